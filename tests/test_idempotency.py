"""Idempotency-Key on POST /orders: retries replay, different bodies are refused, failures
leave the key free, and keys expire."""

from datetime import timedelta

import pytest
from sqlmodel import Session, func, select

from app import idempotency
from app.errors import ApiError
from app.schemas import OrderCreate
from app.tables import IdempotencyKey, Order, Product
from app.types import utcnow
from tests.factories import make_product, product_body

DAY = timedelta(hours=24)


def orders_in_db(session: Session) -> int:
    return session.exec(select(func.count()).select_from(Order)).one()


def request_for(product: Product, quantity: int = 1) -> OrderCreate:
    return OrderCreate.model_validate({"product_id": product.id, "quantity": quantity})


def test_same_key_and_body_replays_the_first_answer(session: Session):
    mug = make_product(session, stock=5)

    first = idempotency.place_order_once(session, "k-1", request_for(mug, 2), DAY)
    again = idempotency.place_order_once(session, "k-1", request_for(mug, 2), DAY)

    assert (first.replayed, again.replayed) == (False, True)
    assert again.status_code == 201 and again.body == first.body
    assert orders_in_db(session) == 1
    session.expire_all()
    assert session.get(Product, mug.id).stock == 3


def test_same_key_with_another_body_is_refused(session: Session):
    mug = make_product(session, stock=5)
    idempotency.place_order_once(session, "k-1", request_for(mug, 1), DAY)

    with pytest.raises(ApiError) as raised:
        idempotency.place_order_once(session, "k-1", request_for(mug, 2), DAY)

    assert (raised.value.status, raised.value.code) == (422, "idempotency_key_reused")
    assert orders_in_db(session) == 1


def test_a_failed_request_leaves_its_key_free(session: Session):
    mug = make_product(session, stock=1)

    with pytest.raises(ApiError):
        idempotency.place_order_once(session, "k-1", request_for(mug, 2), DAY)
    assert session.get(IdempotencyKey, "k-1") is None

    answer = idempotency.place_order_once(session, "k-1", request_for(mug, 1), DAY)
    assert answer.status_code == 201 and not answer.replayed


def test_expired_keys_are_forgotten(session: Session):
    mug = make_product(session, stock=5)
    idempotency.place_order_once(session, "old", request_for(mug), DAY)
    stored = session.get(IdempotencyKey, "old")
    stored.created_at = utcnow() - DAY - timedelta(minutes=1)
    session.add(stored)
    session.commit()

    fresh = idempotency.place_order_once(session, "old", request_for(mug, 2), DAY)
    assert not fresh.replayed and orders_in_db(session) == 2

    stored = session.get(IdempotencyKey, "old", populate_existing=True)
    stored.created_at = utcnow() - DAY - timedelta(minutes=1)
    session.add(stored)
    session.commit()
    assert idempotency.purge_expired(session, DAY) == 1
    assert session.get(IdempotencyKey, "old", populate_existing=True) is None


def test_api_replay_sets_idempotent_replayed_and_location(client, session: Session):
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
    assert orders_in_db(session) == 1


@pytest.mark.parametrize("key", ["", "k" * 256])
def test_api_rejects_keys_outside_1_to_255_characters(client, session: Session, key):
    product = client.post("/products", json=product_body(stock=5)).json()
    response = client.post(
        "/orders",
        json={"product_id": product["id"], "quantity": 1},
        headers={"Idempotency-Key": key},
    )
    assert response.status_code == 422 and response.json()["code"] == "validation_error"
    assert orders_in_db(session) == 0
