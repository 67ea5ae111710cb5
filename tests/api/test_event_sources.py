"""Every path that makes a change records its event: stock adjustments and stock sets
(`stock.adjusted`), and the service's own expiry of unpaid orders (`order.canceled`)."""

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app import housekeeping, orders
from app.core.config import Settings
from app.db.base import Connection, Sql
from app.main import create_app
from tests.api.test_payment_window import _set_times, run
from tests.support.factories import product_body
from tests.support.serving import serving


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    configured = settings.model_copy(
        update={"pending_order_ttl_seconds": 600, "event_allow_private_urls": True}
    )
    with serving(create_app(configured, engine)) as client:
        yield client


def events_of(client: TestClient, type_: str, at_least: int = 0) -> list[dict[str, Any]]:
    """The feed's events of one type, once there are `at_least` (a transaction open elsewhere
    on a PostgreSQL server holds new events back until it ends)."""
    deadline = time.monotonic() + 30
    while True:
        items = client.get("/events", params={"type": type_, "limit": 100}).json()["items"]
        if len(items) >= at_least or time.monotonic() > deadline:
            return items
        time.sleep(0.05)


def new_product(client: TestClient, stock: int = 10) -> dict[str, Any]:
    response = client.post("/products", json=product_body(stock=stock, price="5.00"))
    assert response.status_code == 201, response.text
    return response.json()


def test_an_adjustment_records_stock_adjusted_with_the_product_and_its_movement(client):
    product = new_product(client)
    adjustment = {"delta": 5, "reason": "received", "reference": "PO-1"}

    movement = client.post(f"/products/{product['id']}/stock-adjustments", json=adjustment)

    assert movement.status_code == 201, movement.text
    (event,) = events_of(client, "stock.adjusted", at_least=1)
    assert event["data"]["movement"] == movement.json()
    assert event["data"]["product"] == client.get(f"/products/{product['id']}").json()
    assert event["data"]["product"]["stock"] == 15


def test_a_stock_set_records_stock_adjusted_and_other_updates_do_not(client):
    product = new_product(client)

    client.patch(f"/products/{product['id']}", json={"name": "Renamed mug"})
    updated = client.patch(f"/products/{product['id']}", json={"stock": 4}).json()

    (event,) = events_of(client, "stock.adjusted", at_least=1)
    assert event["data"]["product"] == updated
    movement = event["data"]["movement"]
    assert (movement["reason"], movement["delta"], movement["stock_after"]) == ("stock_set", -6, 4)


def test_a_refused_adjustment_records_nothing(client):
    product = new_product(client, stock=2)

    refused = client.post(
        f"/products/{product['id']}/stock-adjustments", json={"delta": -5, "reason": "lost"}
    )

    assert refused.status_code == 409
    assert events_of(client, "stock.adjusted") == []


def test_orders_and_creation_with_stock_are_not_stock_adjustments(client):
    product = new_product(client)
    placed = client.post("/orders", json={"product_id": product["id"], "quantity": 1}).json()
    client.delete(f"/orders/{placed['id']}")

    events_of(client, "order.canceled", at_least=1)
    assert events_of(client, "stock.adjusted") == []


def test_expiry_records_order_canceled_with_reason_expired_once(client):
    product = new_product(client)
    due = client.post("/orders", json={"product_id": product["id"], "quantity": 2}).json()
    run(client, _set_times, due["id"], expires_at=datetime.now(UTC) - timedelta(seconds=1))

    assert run(client, orders.expire_due) == 1
    assert run(client, orders.expire_due) == 0

    (event,) = events_of(client, "order.canceled", at_least=1)
    assert event["data"]["order"] == client.get(f"/orders/{due['id']}").json()
    assert event["data"]["order"]["cancel_reason"] == "expired"


_BACKDATE = Sql("UPDATE events SET created_at = :when")


async def _backdate(conn: Connection, when: datetime) -> None:
    await conn.execute(_BACKDATE, {"when": when})


async def _count(conn: Connection, table: str) -> int:
    return await conn.fetch_value(Sql(f"SELECT count(*) FROM {table}"))


def test_housekeeping_purges_events_past_their_retention_with_their_deliveries(client):
    product = new_product(client)  # product.created, before any subscription: no delivery
    created = client.post(
        "/event-subscriptions", json={"url": "http://127.0.0.1:9/gone", "types": ["*"]}
    )
    assert created.status_code == 201
    client.post("/orders", json={"product_id": product["id"], "quantity": 1})
    database = client.app.state.database
    assert run(client, _count, "events") == 2 and run(client, _count, "event_deliveries") == 1

    kept = client.portal.call(housekeeping.purge_events, database, timedelta(days=30))
    run(client, _backdate, datetime.now(UTC) - timedelta(days=31))
    purged = client.portal.call(housekeeping.purge_events, database, timedelta(days=30))

    assert (kept, purged) == (0, 2)
    assert run(client, _count, "events") == 0 and run(client, _count, "event_deliveries") == 0
