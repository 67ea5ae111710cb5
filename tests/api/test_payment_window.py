"""Orders over HTTP with the ledger's additions: cancel_reason, expires_at, the payment window
(expiry by the service, late payments refused), and the created_after/created_before filters."""

import functools
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from app import ledger, orders
from app.core.config import Settings
from app.db.base import Connection, Sql
from app.main import create_app
from tests.support.factories import product_body
from tests.support.serving import serving
from tests.support.webhooks import SECRET, deliver

TTL = 600


def _app(settings: Settings, engine, **changes) -> FastAPI:
    configured = settings.model_copy(update={"webhook_secret": SecretStr(SECRET), **changes})
    return create_app(configured, engine)


@pytest.fixture
def windowed(settings: Settings, engine) -> Iterator[TestClient]:
    """The app with a payment window of 10 minutes (the sweeper never finds a due order)."""
    with serving(_app(settings, engine, pending_order_ttl_seconds=TTL)) as client:
        yield client


def run(client: TestClient, unit, *args, **kwargs):
    """A unit of work on the app's own database, on the app's own event loop."""
    database = client.app.state.database
    return client.portal.call(functools.partial(database.write, unit, *args, **kwargs))


_SET_TIMES = Sql(
    "UPDATE orders SET created_at = COALESCE(:created_at, created_at), "
    "expires_at = COALESCE(:expires_at, expires_at) WHERE id = :order_id"
)


async def _set_times(conn: Connection, order_id: int, created_at=None, expires_at=None) -> None:
    await conn.execute(
        _SET_TIMES, {"order_id": order_id, "created_at": created_at, "expires_at": expires_at}
    )


def new_product(client: TestClient, stock: int = 10) -> dict:
    response = client.post("/products", json=product_body(stock=stock, price="5.00"))
    assert response.status_code == 201, response.text
    return response.json()


def place(client: TestClient, product_id: int, quantity: int = 2) -> dict:
    response = client.post("/orders", json={"product_id": product_id, "quantity": quantity})
    assert response.status_code == 201, response.text
    return response.json()


def pay(client: TestClient, order: dict, type_: str = "payment.succeeded"):
    body = json.dumps(
        {"type": type_, "order_id": order["id"], "amount": order["total"], "payment_id": "pay_1"}
    ).encode()
    return deliver(client, body)


def stock_of(client: TestClient, product_id: int) -> int:
    return client.get(f"/products/{product_id}").json()["stock"]


def movements(client: TestClient, product_id: int) -> list[dict]:
    return client.get(f"/products/{product_id}/stock-movements").json()["items"]


def _parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment)


# ---------------------------------------------------------------- cancel_reason


def test_an_order_carries_no_cancel_reason_and_no_deadline_without_a_window(client):
    order = place(client, new_product(client)["id"])

    assert (order["cancel_reason"], order["expires_at"]) == (None, None)
    assert client.get(f"/orders/{order['id']}").json()["expires_at"] is None


@pytest.mark.parametrize(
    "cancel",
    [
        lambda c, o: c.delete(f"/orders/{o['id']}"),
        lambda c, o: c.put(f"/orders/{o['id']}", json={"status": "CANCELED"}),
        lambda c, o: c.patch(f"/orders/{o['id']}", json={"status": "CANCELED"}),
    ],
)
def test_a_cancel_by_the_api_is_requested(windowed, cancel):
    order = place(windowed, new_product(windowed)["id"])

    response = cancel(windowed, order)

    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["cancel_reason"]) == (
        "CANCELED",
        "requested",
    )
    assert windowed.get(f"/orders/{order['id']}").json()["cancel_reason"] == "requested"


def test_a_failed_payment_cancels_with_payment_failed_and_returns_stock_once(windowed):
    product = new_product(windowed, stock=10)
    order = place(windowed, product["id"], 4)

    response = pay(windowed, order, "payment.failed")

    assert response.status_code == 200, response.text
    canceled = windowed.get(f"/orders/{order['id']}").json()
    assert (canceled["status"], canceled["cancel_reason"]) == ("CANCELED", "payment_failed")
    assert stock_of(windowed, product["id"]) == 10
    assert [m["reason"] for m in movements(windowed, product["id"])] == [
        "order_canceled",
        "order_placed",
        "initial",
    ]


def test_a_paid_order_that_is_canceled_returns_its_stock_as_order_canceled(windowed):
    product = new_product(windowed, stock=10)
    order = place(windowed, product["id"], 3)
    assert pay(windowed, order).status_code == 200

    canceled = windowed.delete(f"/orders/{order['id']}").json()

    assert (canceled["status"], canceled["cancel_reason"]) == ("CANCELED", "requested")
    newest = movements(windowed, product["id"])[0]
    assert (newest["reason"], newest["delta"], newest["order_id"]) == (
        "order_canceled",
        3,
        order["id"],
    )


# ---------------------------------------------------------------- the payment window


def test_an_order_placed_under_a_window_shows_its_deadline(windowed):
    order = place(windowed, new_product(windowed)["id"])

    assert _parse(order["expires_at"]) == _parse(order["created_at"]) + timedelta(seconds=TTL)
    assert windowed.get(f"/orders/{order['id']}").json()["expires_at"] == order["expires_at"]
    listed = windowed.get("/orders").json()["items"][0]
    assert listed["expires_at"] == order["expires_at"]


def test_expiry_cancels_due_orders_with_their_stock_and_movements_exactly_once(windowed):
    product = new_product(windowed, stock=10)
    due, later, paid = (place(windowed, product["id"], q) for q in (2, 3, 1))
    assert pay(windowed, paid).status_code == 200
    past = datetime.now(UTC) - timedelta(seconds=1)
    for order in (due, paid):
        run(windowed, _set_times, order["id"], expires_at=past)

    expired = run(windowed, orders.expire_due)
    again = run(windowed, orders.expire_due)

    assert (expired, again) == (1, 0)
    after = {o["id"]: windowed.get(f"/orders/{o['id']}").json() for o in (due, later, paid)}
    assert (after[due["id"]]["status"], after[due["id"]]["cancel_reason"]) == (
        "CANCELED",
        "expired",
    )
    assert after[later["id"]]["status"] == "PENDING"
    assert after[paid["id"]]["status"] == "PAID"
    assert stock_of(windowed, product["id"]) == 10 - 3 - 1
    newest = movements(windowed, product["id"])[0]
    assert (newest["reason"], newest["delta"], newest["order_id"], newest["stock_after"]) == (
        "order_expired",
        2,
        due["id"],
        6,
    )
    audit = run(windowed, ledger.audit)
    assert audit.violations == []


def test_expiry_works_in_bounded_batches_soonest_deadline_first(windowed):
    product = new_product(windowed, stock=100)
    placed = [place(windowed, product["id"], 1) for _ in range(5)]
    base = datetime.now(UTC) - timedelta(minutes=1)
    for n, order in enumerate(reversed(placed)):
        run(windowed, _set_times, order["id"], expires_at=base + timedelta(seconds=n))

    counts = [run(windowed, orders.expire_due, limit=2) for _ in range(4)]

    assert counts == [2, 2, 1, 0]
    first_two = {m["order_id"] for m in movements(windowed, product["id"])[3:5]}
    assert first_two == {placed[-1]["id"], placed[-2]["id"]}  # their deadlines came first
    assert stock_of(windowed, product["id"]) == 100


def test_a_payment_after_the_deadline_is_refused_and_changes_nothing(windowed):
    product = new_product(windowed, stock=10)
    order = place(windowed, product["id"], 2)
    run(windowed, _set_times, order["id"], expires_at=datetime.now(UTC) - timedelta(seconds=1))

    response = pay(windowed, order)
    by_api = windowed.put(f"/orders/{order['id']}", json={"status": "PAID"})

    for refused in (response, by_api):
        assert refused.status_code == 409, refused.text
        problem = refused.json()
        assert (problem["code"], problem["from"], problem["to"]) == (
            "invalid_status_transition",
            "PENDING",
            "PAID",
        )
        assert "payment window" in problem["detail"]
    assert windowed.get(f"/orders/{order['id']}").json()["status"] == "PENDING"
    assert stock_of(windowed, product["id"]) == 8


def test_a_payment_for_an_expired_order_is_409(windowed):
    order = place(windowed, new_product(windowed)["id"])
    run(windowed, _set_times, order["id"], expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert run(windowed, orders.expire_due) == 1

    response = pay(windowed, order)

    assert response.status_code == 409
    assert response.json()["code"] == "invalid_status_transition"
    assert response.json()["from"] == "CANCELED"


def test_each_workers_sweeper_expires_orders_past_their_window(settings, engine):
    changes = {"pending_order_ttl_seconds": 1, "housekeeping_interval_seconds": 0.05}
    with serving(_app(settings, engine, **changes)) as client:
        before = _expired_count(client)
        product = new_product(client, stock=5)
        order = place(client, product["id"], 5)
        deadline = time.monotonic() + 10
        while client.get(f"/orders/{order['id']}").json()["status"] == "PENDING":
            assert time.monotonic() < deadline, "the order never expired"
            time.sleep(0.1)

        expired = client.get(f"/orders/{order['id']}").json()
        assert expired["cancel_reason"] == "expired"
        assert stock_of(client, product["id"]) == 5
        assert _expired_count(client) == before + 1


def _expired_count(client: TestClient) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("orders_expired_total "):
            return float(line.split()[1])
    raise AssertionError("orders_expired_total is not in /metrics")


# ---------------------------------------------------------------- created_after / created_before


def test_orders_filter_by_creation_time_from_inclusive_to_exclusive(client):
    pid = new_product(client, stock=100)["id"]
    placed = [place(client, pid, 1) for _ in range(4)]
    times = [datetime(2026, 11, 27, 9, minute, tzinfo=UTC) for minute in (0, 10, 20, 30)]
    for order, moment in zip(placed, times, strict=True):
        run(client, _set_times, order["id"], created_at=moment)

    def ids(**params) -> list[int]:
        response = client.get("/orders", params=params)
        assert response.status_code == 200, response.text
        return [o["id"] for o in response.json()["items"]]

    newest_first = [o["id"] for o in reversed(placed)]
    assert ids(created_after="2026-11-27T09:10:00Z") == newest_first[:3]
    assert ids(created_before="2026-11-27T09:10:00Z") == newest_first[3:]
    assert (
        ids(created_after="2026-11-27T09:10:00Z", created_before="2026-11-27T09:30:00Z")
        == (newest_first[1:3])
    )
    # Another offset names the same instant.
    assert ids(created_after="2026-11-27T10:10:00+01:00") == newest_first[:3]
    page = client.get("/orders", params={"created_after": "2026-11-27T09:00:00Z", "limit": 2})
    assert page.json()["total"] == 4
    rest = client.get(
        "/orders",
        params={"created_after": "2026-11-27T09:00:00Z", "limit": 2, "after": page.json()["next"]},
    )
    assert [o["id"] for o in rest.json()["items"]] == newest_first[2:]


@pytest.mark.parametrize(
    "params",
    [
        {"created_after": "yesterday"},
        {"created_before": "2026-13-01T00:00:00Z"},
        {"created_after": "2026-11-27T09:00:00"},  # no offset: which instant is it?
    ],
)
def test_a_creation_time_filter_that_is_not_an_rfc3339_instant_is_422(client, params):
    response = client.get("/orders", params=params)

    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert problem["errors"][0]["loc"] == ["query", next(iter(params))]
