"""Idempotency-Key over HTTP: a retry replays the first answer (Idempotent-Replayed, the same
Location), another body under the same key is 422, and a key must be 1 to 255 characters."""

import pytest

from tests.support.factories import Db, orders_in_db, product_body


def test_api_replay_sets_idempotent_replayed_and_location(client, db: Db):
    product = client.post("/products", json=product_body(stock=5)).json()
    body = {"items": [{"product_id": product["id"], "quantity": 2}]}
    reordered = '{"items":[{"quantity":2,  "product_id":' + str(product["id"]) + "}]}"

    first = client.post("/orders", json=body, headers={"Idempotency-Key": "abc"})
    again = client.post(
        "/orders",
        content=reordered,
        headers={"Idempotency-Key": "abc", "content-type": "application/json"},
    )
    different = client.post(
        "/orders",
        json={"product_id": product["id"], "quantity": 1},
        headers={"Idempotency-Key": "abc"},
    )

    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert different.status_code == 422
    assert different.json()["code"] == "idempotency_key_reused"
    assert client.get(f"/products/{product['id']}").json()["stock"] == 3
    assert orders_in_db(db) == 1


@pytest.mark.parametrize("key", ["", "k" * 256])
def test_api_rejects_keys_outside_1_to_255_characters(client, db: Db, key):
    product = client.post("/products", json=product_body(stock=5)).json()
    response = client.post(
        "/orders",
        json={"product_id": product["id"], "quantity": 1},
        headers={"Idempotency-Key": key},
    )
    assert response.status_code == 422 and response.json()["code"] == "validation_error"
    assert orders_in_db(db) == 0
