"""stock.low, stock.out and stock.replenished on every path that moves `available` (both
engines): orders (on PostgreSQL both the one-statement order and its rerun in a transaction),
cancels, expiry, adjustments, counts, stock sets, refunds that release or return units, imports;
one event per crossing, carrying the product and the movement as the API shows them. Also
GET /products?low_stock= and the /metrics gauge of products below their threshold."""

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine

from app import orders
from app.core.config import Settings
from app.ledger import crossings
from app.main import create_app
from app.tables import EventType
from tests.api.test_payment_window import _set_times, run
from tests.support.factories import product_body
from tests.support.serving import serving
from tests.support.webhooks import SECRET, deliver, event_body

STOCK_TYPES = {EventType.STOCK_LOW, EventType.STOCK_OUT, EventType.STOCK_REPLENISHED}
LOW, OUT, BACK = "stock.low", "stock.out", "stock.replenished"


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    configured = settings.model_copy(
        update={"webhook_secret": SecretStr(SECRET), "pending_order_ttl_seconds": 600}
    )
    with serving(create_app(configured, engine)) as client:
        yield client


def stock_events(client: TestClient, product_id: int, expected: int) -> list[dict[str, Any]]:
    """The product's stock events in the feed's order, once there are `expected` (a transaction
    open elsewhere on PostgreSQL holds new events back until it ends); then a last read, so an
    extra event is seen too."""
    deadline = time.monotonic() + 30
    while True:
        items = client.get("/events", params={"limit": 100}).json()["items"]
        found = [
            event
            for event in items
            if event["type"] in STOCK_TYPES and event["data"]["product"]["id"] == product_id
        ]
        if len(found) >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def types_of(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in events]


def new_product(client: TestClient, stock: int, threshold: int | None = None) -> dict[str, Any]:
    body = product_body(stock=stock, price="5.00", low_stock_threshold=threshold)
    response = client.post("/products", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def place(client: TestClient, *lines: tuple[int, int]) -> dict[str, Any]:
    body = {"items": [{"product_id": p, "quantity": q} for p, q in lines]}
    response = client.post("/orders", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def shown(client: TestClient, product_id: int) -> dict[str, Any]:
    return client.get(f"/products/{product_id}").json()


@pytest.mark.parametrize(
    ("before", "after", "threshold", "expected"),
    [
        (10, 6, 5, []),
        (6, 5, 5, []),
        (5, 4, 5, [EventType.STOCK_LOW]),
        (4, 3, 5, []),
        (6, 0, 5, [EventType.STOCK_LOW, EventType.STOCK_OUT]),
        (1, 0, None, [EventType.STOCK_OUT]),
        (0, -1, None, []),
        (0, 3, 5, [EventType.STOCK_REPLENISHED]),
        (-2, 0, None, []),
        (3, 9, 5, []),
        (1, 0, 0, [EventType.STOCK_OUT]),  # a threshold of 0: available never falls below it
        (0, -1, 0, [EventType.STOCK_LOW]),
    ],
)
def test_crossings(before, after, threshold, expected):
    assert crossings(before, after, threshold) == expected


def test_orders_and_a_cancel_cross_the_threshold_and_zero_once_each(client):
    product = new_product(client, stock=10, threshold=5)
    pid = product["id"]
    assert stock_events(client, pid, 0) == []  # opening units: product.created reports them

    place(client, (pid, 4))  # 10 → 6
    place(client, (pid, 1))  # 6 → 5: not below 5
    assert stock_events(client, pid, 0) == []
    place(client, (pid, 1))  # 5 → 4
    at_low = shown(client, pid)
    big = place(client, (pid, 4))  # 4 → 0
    at_out = shown(client, pid)
    assert client.delete(f"/orders/{big['id']}").status_code == 200  # 0 → 4
    at_back = shown(client, pid)

    events = stock_events(client, pid, 3)
    assert types_of(events) == [LOW, OUT, BACK]
    low, out, back = events
    assert low["data"]["product"] == at_low and out["data"]["product"] == at_out
    assert back["data"]["product"] == at_back
    movement = out["data"]["movement"]
    assert (movement["reason"], movement["delta"], movement["stock_after"]) == (
        "order_placed",
        -4,
        0,
    )
    assert movement["order_id"] == big["id"]
    assert movement in client.get(f"/products/{pid}/stock-movements").json()["items"]
    assert back["data"]["movement"]["reason"] == "order_canceled"


def test_an_order_of_several_lines_records_each_crossing_line_and_stays_whole(client):
    crossing = new_product(client, stock=3, threshold=2)
    calm = new_product(client, stock=50, threshold=2)

    order = place(client, (calm["id"], 1), (crossing["id"], 3))

    assert [line["product_id"] for line in order["items"]] == [calm["id"], crossing["id"]]
    assert client.get(f"/orders/{order['id']}").json() == order
    assert types_of(stock_events(client, crossing["id"], 2)) == [LOW, OUT]
    assert stock_events(client, calm["id"], 0) == []


def test_a_refused_order_that_would_cross_changes_nothing_and_records_nothing(client):
    crossing = new_product(client, stock=1)
    empty = new_product(client, stock=0)

    refused = client.post(
        "/orders",
        json={
            "items": [
                {"product_id": crossing["id"], "quantity": 1},
                {"product_id": empty["id"], "quantity": 1},
            ]
        },
    )

    assert refused.status_code == 409, refused.text
    assert refused.json()["product_id"] == empty["id"]
    assert shown(client, crossing["id"])["available"] == 1
    assert stock_events(client, crossing["id"], 0) == []
    assert stock_events(client, empty["id"], 0) == []


def test_expiry_replenishes(client):
    product = new_product(client, stock=2)
    due = place(client, (product["id"], 2))
    run(client, _set_times, due["id"], expires_at=datetime.now(UTC) - timedelta(seconds=1))

    assert run(client, orders.expire_due) == 1

    events = stock_events(client, product["id"], 2)
    assert types_of(events) == [OUT, BACK]
    assert events[-1]["data"]["movement"]["reason"] == "order_expired"
    assert events[-1]["data"]["product"] == shown(client, product["id"])


def test_adjustments_counts_and_stock_sets_cross_both_ways(client):
    product = new_product(client, stock=3, threshold=5)
    pid = product["id"]
    base = f"/products/{pid}"

    out = client.post(f"{base}/stock-adjustments", json={"delta": -3, "reason": "lost"})
    assert out.status_code == 201, out.text
    assert client.post(f"{base}/stock-adjustments", json={"delta": 10, "reason": "received"})
    counted = client.post(f"{base}/stock-counts", json={"on_hand": 4})  # 10 → 4
    assert counted.status_code == 201, counted.text
    assert client.patch(base, json={"stock": 0}).status_code == 200  # 4 → 0
    assert client.patch(base, json={"stock": 7}).status_code == 200  # 0 → 7
    at_back = shown(client, pid)
    assert client.patch(base, json={"name": "Renamed"}).status_code == 200  # no movement

    events = stock_events(client, pid, 5)
    assert types_of(events) == [OUT, BACK, LOW, OUT, BACK]
    assert events[0]["data"]["movement"] == out.json()
    assert [e["data"]["movement"]["reason"] for e in events] == [
        "lost",
        "received",
        "counted",
        "stock_set",
        "stock_set",
    ]
    assert events[-1]["data"]["product"] == at_back


def _paid(client: TestClient, *lines: tuple[int, int]) -> dict[str, Any]:
    order = place(client, *lines)
    assert deliver(client, event_body(order)).status_code == 200
    return order


def test_refunds_replenish_by_releasing_and_by_returning(client):
    released = new_product(client, stock=1)
    returned = new_product(client, stock=1)
    order = _paid(client, (released["id"], 1), (returned["id"], 1))
    shipment = {"items": [{"product_id": returned["id"], "quantity": 1}]}
    assert client.post(f"/orders/{order['id']}/shipments", json=shipment).status_code == 201

    refund = client.post(
        f"/orders/{order['id']}/refunds",
        json={"items": [{"product_id": p["id"], "quantity": 1} for p in (released, returned)]},
    )

    assert refund.status_code == 201, refund.text
    for product, reason in ((released, "order_line_released"), (returned, "order_returned")):
        events = stock_events(client, product["id"], 2)
        assert types_of(events) == [OUT, BACK]
        assert events[-1]["data"]["movement"]["reason"] == reason
        assert events[-1]["data"]["product"] == shown(client, product["id"])


def test_an_import_crosses_as_a_count(client):
    product = new_product(client, stock=5)

    response = client.post(
        "/products/import",
        content=json.dumps({"sku": product["sku"], "on_hand": 0}) + "\n",
        headers={"Content-Type": "application/x-ndjson"},
    )

    assert response.status_code == 200, response.text
    assert types_of(stock_events(client, product["id"], 1)) == [OUT]


def test_low_stock_filter_and_the_metrics_gauge(client):
    low = new_product(client, stock=2, threshold=5)
    at = new_product(client, stock=5, threshold=5)
    none = new_product(client, stock=0)
    ids = {low["id"], at["id"], none["id"]}

    def listed(value: str) -> set[int]:
        page = client.get("/products", params={"low_stock": value, "limit": 100}).json()
        return {item["id"] for item in page["items"]} & ids

    assert listed("true") == {low["id"]}
    assert listed("false") == {at["id"], none["id"]}

    def gauge() -> float:
        text = client.get("/metrics").text
        (line,) = [
            line
            for line in text.splitlines()
            if line.startswith("products_below_low_stock_threshold ")
        ]
        return float(line.split()[1])

    assert gauge() == 1
    place(client, (at["id"], 1))
    assert gauge() == 2
    assert client.delete(f"/products/{low['id']}").status_code == 204
    assert gauge() == 1
