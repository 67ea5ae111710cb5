"""An external_id is placed once, even when a storefront submits it many times at the same
instant: a 4-worker server per engine, 16 requests at once, each line on its own product (so
only the unique external_id stands between them) or all on one product (so they queue on its
row first)."""

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.support.databases import ENGINES, database_url
from tests.support.live_server import LiveServer

AT_ONCE = 16


@pytest.fixture(scope="module", params=ENGINES)
def server(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp(f"external-id-race-{request.param}")
    with (
        database_url(request.param, tmp) as url,
        LiveServer(url, workers=4, log_path=tmp / "server.log") as live,
    ):
        yield live


def _products(base_url: str, count: int) -> list[int]:
    ids = []
    for _ in range(count):
        response = httpx.post(
            base_url + "/products",
            json={
                "sku": f"RACE-{threading.get_ident()}-{len(ids)}-{id(ids)}",
                "name": "Race",
                "price": "3.00",
                "on_hand": 10,
            },
            timeout=30,
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


def _place_at_once(
    base_url: str, bodies: list[dict], keys: list[str | None]
) -> list[httpx.Response]:
    barrier = threading.Barrier(len(bodies))

    def send(index: int) -> httpx.Response:
        headers = {} if keys[index] is None else {"Idempotency-Key": keys[index]}
        barrier.wait(timeout=30)
        return httpx.post(base_url + "/orders", json=bodies[index], headers=headers, timeout=60)

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(send, range(len(bodies))))


def _state(database_url: str, external_id: str, product_ids: list[int]) -> dict:
    """What the database holds of the orders with `external_id` and of the products."""
    among = f"product_id IN ({', '.join(str(int(i)) for i in product_ids)})"
    queries = {
        "committed": "SELECT coalesce(sum(committed), 0) FROM products "
        f"WHERE {among.replace('product_id', 'id')}",
        "movements": "SELECT count(*) FROM stock_movements WHERE reason = 'order_placed' "
        f"AND {among}",
        "lines": f"SELECT count(*) FROM order_lines WHERE {among}",
        "created_events": "SELECT count(*) FROM events WHERE type = 'order.created' "
        "AND data LIKE :pattern",
    }
    engine = create_engine(database_url, hide_parameters=True)
    try:
        with engine.connect() as conn:
            found = {
                "orders": conn.execute(
                    text("SELECT id FROM orders WHERE external_id = :x"), {"x": external_id}
                )
                .scalars()
                .all()
            }
            pattern = f"%{external_id}%"
            for name, query in queries.items():
                found[name] = int(conn.execute(text(query), {"pattern": pattern}).scalar_one())
        return found
    finally:
        engine.dispose()


@pytest.mark.live
@pytest.mark.parametrize("products", ["one product each", "one product for all"])
@pytest.mark.parametrize("keys", ["no Idempotency-Key", "an Idempotency-Key each"])
def test_a_double_submission_at_the_same_instant_places_one_order(server, products, keys):
    external_id = f"shop-{products.replace(' ', '-')}-{keys.replace(' ', '-')}"
    product_ids = _products(server.base_url, AT_ONCE if products == "one product each" else 1)
    bodies = [
        {
            "items": [{"product_id": product_ids[index % len(product_ids)], "quantity": 2}],
            "external_id": external_id,
            "metadata": {"attempt": str(index)},
        }
        for index in range(AT_ONCE)
    ]
    idempotency = [None if keys.startswith("no") else f"{external_id}-{i}" for i in range(AT_ONCE)]

    responses = _place_at_once(server.base_url, bodies, idempotency)

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] + [409] * (AT_ONCE - 1), [r.text for r in responses]
    [placed] = [response.json() for response in responses if response.status_code == 201]
    for response in responses:
        if response.status_code == 409:
            body = response.json()
            assert (body["code"], body["order_id"]) == ("external_id_conflict", placed["id"])
    assert _state(server.database_url, external_id, product_ids) == {
        "orders": [placed["id"]],
        "committed": 2,
        "movements": 1,
        "lines": 1,
        "created_events": 1,
    }
