"""The benchmark's seeded databases (bench/servers.py) take the service's own writes after the
seed: rows seeded with their ids must not leave PostgreSQL's id sequences behind."""

from app.core.config import Settings
from app.main import create_app
from bench.servers import API_KEY, fresh_database, seed_orders, seed_products
from tests.support.serving import serving


def test_a_seeded_benchmark_database_takes_new_products_and_orders(db_kind: str) -> None:
    with fresh_database(db_kind) as url:
        seed_products(url, 5)
        seed_orders(url, 3, products=5)
        app = create_app(Settings(_env_file=None, database_url=url, api_keys=[API_KEY]))
        with serving(app, headers={"X-API-Key": API_KEY}) as client:
            product = client.post(
                "/products", json={"sku": "AFTER-SEED", "name": "Mug", "price": "2.50", "stock": 4}
            )
            order = client.post("/orders", json={"product_id": 5, "quantity": 1})
            listed = client.get("/products", params={"limit": 1})

    assert (product.status_code, product.json()["id"]) == (201, 6), product.text
    assert (order.status_code, order.json()["id"]) == (201, 4), order.text
    assert listed.json()["total"] == 6
