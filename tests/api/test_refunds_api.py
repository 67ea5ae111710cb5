"""POST/GET /orders/{id}/refunds and payment.refunded over HTTP (both engines): money given back
capped by what was paid, units released or returned, the order's status following, and one
refund per provider refund id whichever path reports it first."""

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine

from app.core.config import Settings
from app.main import create_app
from tests.support.factories import Db
from tests.support.serving import serving
from tests.support.webhooks import SECRET, deliver, event_body


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    configured = settings.model_copy(update={"webhook_secret": SecretStr(SECRET)})
    with serving(create_app(configured, engine)) as client:
        yield client


def product(client: TestClient, on_hand: int = 10, price: str = "10.00") -> int:
    body = {"sku": f"R-{on_hand}-{id(client)}-{price}", "name": "Mug", "price": price}
    created = client.post("/products", json={**body, "sku": _sku(), "on_hand": on_hand})
    assert created.status_code == 201, created.text
    return created.json()["id"]


_skus = iter(range(1, 10_000))


def _sku() -> str:
    return f"REF-{next(_skus)}"


def paid_order(client: TestClient, *lines: tuple[int, int]) -> dict[str, Any]:
    placed = client.post(
        "/orders", json={"items": [{"product_id": p, "quantity": q} for p, q in lines]}
    )
    assert placed.status_code == 201, placed.text
    order = placed.json()
    paid = deliver(client, event_body(order))
    assert paid.status_code == 200, paid.text
    return client.get(f"/orders/{order['id']}").json()


def quantities(db: Db, product_id: int) -> tuple[int, int]:
    row = db.rows("SELECT on_hand, committed FROM products WHERE id = :id", id=product_id)[0]
    return row["on_hand"], row["committed"]


def money_of(db: Db, order_id: int) -> tuple[int, int, str]:
    row = db.rows(
        "SELECT amount_paid_cents, amount_refunded_cents, payment_status FROM orders "
        "WHERE id = :id",
        id=order_id,
    )[0]
    return row["amount_paid_cents"], row["amount_refunded_cents"], row["payment_status"]


def problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code
    return response.json()


def test_a_refund_of_unshipped_units_releases_them_and_the_order_follows(client, db):
    mug = product(client, on_hand=10)
    order = paid_order(client, (mug, 3))

    partial = client.post(
        f"/orders/{order['id']}/refunds",
        json={"items": [{"product_id": mug, "quantity": 1}], "reason": "requested_by_customer"},
    )
    assert partial.status_code == 201, partial.text
    refund = partial.json()
    assert partial.headers["location"] == f"/orders/{order['id']}/refunds/{refund['id']}"
    assert (refund["amount"], refund["currency"], refund["source"]) == ("10.00", "USD", "api")
    assert refund["items"] == [{"product_id": mug, "quantity": 1, "restock": "auto"}]
    assert quantities(db, mug) == (10, 2)  # one unit released: committed 3 -> 2
    assert money_of(db, order["id"]) == (3000, 1000, "partially_refunded")
    assert client.get(f"/orders/{order['id']}").json()["status"] == "PAID"

    rest = client.post(
        f"/orders/{order['id']}/refunds", json={"items": [{"product_id": mug, "quantity": 2}]}
    )
    assert rest.status_code == 201, rest.text
    shown = client.get(f"/orders/{order['id']}").json()
    # The last unshipped units released, nothing shipped: the order is canceled, refunded.
    assert (shown["status"], shown["cancel_reason"]) == ("CANCELED", "refunded")
    assert shown["items"][0]["quantity_released"] == 3
    assert shown["items"][0]["quantity_refunded"] == 3
    assert quantities(db, mug) == (10, 0)
    assert money_of(db, order["id"]) == (3000, 3000, "refunded")
    reasons = [
        m["reason"]
        for m in client.get(f"/products/{mug}/stock-movements", params={"limit": 50}).json()[
            "items"
        ]
    ]
    assert reasons.count("order_line_released") == 2
    assert [r["id"] for r in client.get(f"/orders/{order['id']}/refunds").json()["items"]] == [
        refund["id"],
        rest.json()["id"],
    ]
    types = [row["type"] for row in db.rows("SELECT type FROM events ORDER BY seq")]
    assert types.count("refund.created") == 2 and "order.canceled" in types


def test_shipped_units_return_to_the_shelf_and_a_partly_shipped_order_becomes_shipped(client, db):
    mug, tee = product(client, on_hand=10), product(client, on_hand=5, price="20.00")
    order = paid_order(client, (mug, 2), (tee, 1))
    shipped = client.post(
        f"/orders/{order['id']}/shipments", json={"items": [{"product_id": mug, "quantity": 2}]}
    )
    assert shipped.status_code == 201, shipped.text
    assert quantities(db, mug) == (8, 0)

    returned = client.post(
        f"/orders/{order['id']}/refunds",
        json={"items": [{"product_id": mug, "quantity": 1}, {"product_id": tee, "quantity": 1}]},
    )

    assert returned.status_code == 201, returned.text
    assert returned.json()["amount"] == "30.00"
    assert quantities(db, mug) == (9, 0)  # a shipped unit back on the shelf
    assert quantities(db, tee) == (5, 0)  # the unshipped one released
    shown = client.get(f"/orders/{order['id']}").json()
    assert shown["status"] == "SHIPPED"
    lines = {line["product_id"]: line for line in shown["items"]}
    assert (lines[mug]["quantity_returned"], lines[tee]["quantity_released"]) == (1, 1)


def test_restock_none_moves_no_quantity(client, db):
    mug = product(client, on_hand=10)
    order = paid_order(client, (mug, 2))

    response = client.post(
        f"/orders/{order['id']}/refunds",
        json={
            "items": [{"product_id": mug, "quantity": 1, "restock": "none"}],
            "reason": "damaged",
        },
    )

    assert response.status_code == 201, response.text
    assert quantities(db, mug) == (10, 2)  # still committed, still shippable
    assert client.get(f"/orders/{order['id']}").json()["items"][0]["quantity_refunded"] == 1
    shipped = client.post(f"/orders/{order['id']}/shipments", json={})
    assert shipped.status_code == 201, shipped.text


def test_an_amount_only_refund_and_the_cap(client, db):
    mug = product(client, on_hand=10)
    order = paid_order(client, (mug, 1))

    assert client.post(f"/orders/{order['id']}/refunds", json={"amount": "4.00"}).status_code == 201
    over = client.post(f"/orders/{order['id']}/refunds", json={"amount": "6.01"})

    assert problem(over, 409, "refund_exceeds_paid")["refundable"] == "6.00"
    assert money_of(db, order["id"]) == (1000, 400, "partially_refunded")
    assert quantities(db, mug) == (10, 1)


def test_refused_refunds_change_nothing(client, db):
    mug = product(client, on_hand=10)
    unpaid = client.post("/orders", json={"product_id": mug, "quantity": 1}).json()
    problem(
        client.post(f"/orders/{unpaid['id']}/refunds", json={"amount": "1.00"}), 409, "not_paid"
    )
    order = paid_order(client, (mug, 2))
    base = f"/orders/{order['id']}/refunds"

    problem(client.post(base, json={}), 422, "validation_error")
    problem(client.post(base, json={"amount": "0"}), 422, "validation_error")
    problem(client.post(base, json={"amount": "1.001"}), 422, "validation_error")
    problem(client.post(base, json={"amount": "1", "extra": 1}), 422, "validation_error")
    problem(
        client.post(base, json={"items": [{"product_id": 999_999, "quantity": 1}]}),
        422,
        "validation_error",
    )
    too_many = problem(
        client.post(base, json={"items": [{"product_id": mug, "quantity": 3}]}),
        409,
        "exceeds_remaining",
    )
    assert (too_many["requested"], too_many["remaining"]) == (3, 2)
    problem(client.post("/orders/999999/refunds", json={"amount": "1"}), 404, "order_not_found")
    assert client.get(base).json()["items"] == []
    assert money_of(db, order["id"]) == (2000, 0, "paid")
    assert quantities(db, mug) == (10, 3)


def test_a_provider_refund_id_is_recorded_once_whichever_path_reports_it_first(client, db):
    mug = product(client, on_hand=10)
    order = paid_order(client, (mug, 2))
    base = f"/orders/{order['id']}/refunds"
    body = {"items": [{"product_id": mug, "quantity": 1}], "provider_refund_id": "re_A1"}

    first = client.post(base, json=body)
    again = client.post(base, json=body)
    webhook = deliver(
        client, event_body(order, "payment.refunded", amount="10.00", refund_id="re_A1")
    )

    assert first.status_code == 201, first.text
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert webhook.status_code == 200 and webhook.json()["duplicate"] is True

    # The other order: the webhook first, then the call (which answers the webhook's refund).
    hook = deliver(client, event_body(order, "payment.refunded", amount="5.00", refund_id="re_B2"))
    call = client.post(base, json={"amount": "5.00", "provider_refund_id": "re_B2"})
    assert hook.json()["duplicate"] is False
    assert call.status_code == 200 and call.json()["source"] == "webhook"
    assert money_of(db, order["id"]) == (2000, 1500, "partially_refunded")
    assert len(client.get(base).json()["items"]) == 2


def test_a_payment_refunded_event_needs_its_refund_id_and_is_capped(client, db):
    mug = product(client, on_hand=10)
    order = paid_order(client, (mug, 1))

    missing = deliver(client, event_body(order, "payment.refunded", amount="1.00"))
    over = deliver(
        client, event_body(order, "payment.refunded", amount="10.01", refund_id="re_over")
    )

    problem(missing, 422, "validation_error")
    problem(over, 409, "refund_exceeds_paid")
    assert money_of(db, order["id"]) == (1000, 0, "paid")
    assert db.value("SELECT count(*) FROM payment_events WHERE type = 'payment.refunded'") == 0


def test_one_refund_and_its_list_read_back(client, db):
    mug = product(client, on_hand=10)
    order = paid_order(client, (mug, 2))
    made = client.post(f"/orders/{order['id']}/refunds", json={"amount": "1.00", "note": "sorry"})
    refund = made.json()

    assert client.get(made.headers["location"]).json() == refund
    page = client.get(f"/orders/{order['id']}/refunds", params={"limit": 1}).json()
    assert page["items"] == [refund] and page["total"] == 1
    problem(client.get(f"/orders/{order['id']}/refunds/999999"), 404, "not_found")
    other = paid_order(client, (mug, 1))
    problem(client.get(f"/orders/{other['id']}/refunds/{refund['id']}"), 404, "not_found")
