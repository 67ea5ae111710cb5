"""Stock counts over HTTP (the contract's "Stock ledger, adjustments and counts"): a count sets
on_hand to what was on the shelf at `counted_at` plus what moved after it, so a count posted
later is exact; a count that corrects nothing is recorded; older counts, future and stale
`counted_at` are refused; Idempotency-Key; its event and its metrics."""

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.test_metrics import delta, scrape
from tests.support.factories import product_body


def new_product(client: TestClient, on_hand: int = 10) -> dict[str, Any]:
    body = product_body(on_hand=on_hand)
    del body["stock"]
    response = client.post("/products", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def quantities(client: TestClient, product_id: int) -> tuple[int, int, int]:
    product = client.get(f"/products/{product_id}").json()
    assert product["stock"] == product["available"] == product["on_hand"] - product["committed"]
    return product["on_hand"], product["committed"], product["available"]


def count(client: TestClient, product_id: int, on_hand: int, headers=None, **extra: Any):
    body = {"on_hand": on_hand, **extra}
    return client.post(f"/products/{product_id}/stock-counts", json=body, headers=headers or {})


def stamp(moment: datetime) -> str:
    """RFC 3339 with microseconds, so a moment between two movements stays between them."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def movements(client: TestClient, product_id: int, **params: Any) -> list[dict[str, Any]]:
    response = client.get(f"/products/{product_id}/stock-movements", params=params)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def paid_order(client: TestClient, product: dict[str, Any], quantity: int) -> dict[str, Any]:
    order = client.post("/orders", json={"product_id": product["id"], "quantity": quantity})
    assert order.status_code == 201, order.text
    paid = client.patch(f"/orders/{order.json()['id']}", json={"status": "PAID"})
    assert paid.status_code == 200, paid.text
    return paid.json()


def test_a_count_taken_now_sets_on_hand_and_answers_the_counted_movement(client):
    product = new_product(client, 10)
    paid_order(client, product, 3)

    response = count(client, product["id"], 8, reference="STK-12", note="Aisle 4")

    assert response.status_code == 201, response.text
    movement = response.json()
    assert response.headers["location"] == (
        f"/products/{product['id']}/stock-movements/{movement['id']}"
    )
    assert movement == {
        "id": movement["id"],
        "product_id": product["id"],
        "reason": "counted",
        "on_hand_delta": -2,
        "committed_delta": 0,
        "delta": -2,
        "on_hand_after": 8,
        "committed_after": 3,
        "stock_after": 5,
        "order_id": None,
        "shipment_id": None,
        "refund_id": None,
        "reference": "STK-12",
        "note": "Aisle 4",
        "actor": "anonymous",
        "created_at": movement["created_at"],
    }
    # A count sets what is on the shelf; what is promised stays promised.
    assert quantities(client, product["id"]) == (8, 3, 5)
    assert client.get(response.headers["location"]).json() == movement


def test_a_count_posted_later_keeps_what_shipped_and_arrived_after_it(client):
    """The issue's stocktake: 10 on the shelf, 3 of them promised; the shelf is counted (10)
    and the count posted after 2 of them shipped and 5 arrived. on_hand = 10 − 2 + 5: the
    shipped units are not counted twice, the received ones not lost."""
    product = new_product(client, 10)
    order = paid_order(client, product, 3)
    counted_at = stamp(datetime.now(UTC))
    shipped = client.post(
        f"/orders/{order['id']}/shipments",
        json={"items": [{"product_id": product["id"], "quantity": 2}]},
    )
    assert shipped.status_code == 201, shipped.text
    received = client.post(
        f"/products/{product['id']}/stock-adjustments", json={"delta": 5, "reason": "received"}
    )
    assert received.status_code == 201, received.text
    assert quantities(client, product["id"]) == (13, 1, 12)

    response = count(client, product["id"], 10, counted_at=counted_at)

    assert response.status_code == 201, response.text
    movement = response.json()
    assert (movement["on_hand_delta"], movement["on_hand_after"], movement["stock_after"]) == (
        0,
        13,
        12,
    )
    assert quantities(client, product["id"]) == (13, 1, 12)
    # And a count that did find a loss, taken at the same moment, corrects by just that.
    lower = count(client, product["id"], 9, counted_at=counted_at)
    assert lower.status_code == 201, lower.text
    assert (lower.json()["on_hand_delta"], lower.json()["on_hand_after"]) == (-1, 12)
    # A second order for the shelf's real available units: never more.
    too_many = client.post("/orders", json={"product_id": product["id"], "quantity": 12})
    assert (too_many.status_code, too_many.json()["code"]) == (409, "insufficient_stock")
    ledger = movements(client, product["id"], limit=100)
    assert sum(m["on_hand_delta"] for m in ledger) == 12
    assert sum(m["committed_delta"] for m in ledger) == 1


def test_a_count_that_corrects_nothing_is_recorded_with_both_deltas_zero(client):
    product = new_product(client, 7)

    response = count(client, product["id"], 7)

    assert response.status_code == 201, response.text
    movement = response.json()
    assert (movement["reason"], movement["on_hand_delta"], movement["committed_delta"]) == (
        "counted",
        0,
        0,
    )
    assert (movement["delta"], movement["on_hand_after"], movement["stock_after"]) == (0, 7, 7)
    assert [m["reason"] for m in movements(client, product["id"])] == ["counted", "initial"]


def test_a_count_below_what_is_committed_makes_available_negative(client):
    product = new_product(client, 5)
    paid_order(client, product, 4)

    response = count(client, product["id"], 1)

    assert response.status_code == 201, response.text
    assert response.json()["stock_after"] == -3
    assert quantities(client, product["id"]) == (1, 4, -3)
    refused = client.post("/orders", json={"product_id": product["id"], "quantity": 1})
    assert (refused.status_code, refused.json()["code"]) == (409, "insufficient_stock")
    listed = client.get("/products", params={"in_stock": "false"}).json()["items"]
    assert product["id"] in [p["id"] for p in listed]


def test_a_count_older_than_the_newest_is_409_count_too_old(client):
    product = new_product(client, 10)
    earlier = stamp(datetime.now(UTC))  # after the product's opening units
    assert (
        client.post(
            f"/products/{product['id']}/stock-adjustments", json={"delta": 1, "reason": "received"}
        ).status_code
        == 201
    )
    later = stamp(datetime.now(UTC))
    assert count(client, product["id"], 9, counted_at=later).status_code == 201

    response = count(client, product["id"], 4, counted_at=earlier)

    assert response.status_code == 409, response.text
    problem = response.json()
    assert (problem["code"], problem["product_id"]) == ("count_too_old", product["id"])
    assert problem["newest_count_at"] == later[:19] + "Z"
    assert quantities(client, product["id"]) == (9, 0, 9)
    # A count at the same moment as the newest, or after it, is taken.
    same = count(client, product["id"], 8, counted_at=later)
    assert same.status_code == 201, same.text
    assert count(client, product["id"], 7).status_code == 201
    assert quantities(client, product["id"]) == (7, 0, 7)


@pytest.mark.parametrize(
    "counted_at",
    [
        lambda now: now + timedelta(minutes=5),
        lambda now: now - timedelta(days=7, minutes=5),
        lambda now: now - timedelta(days=30),
    ],
    ids=["future", "over-7-days", "a-month"],
)
def test_a_count_in_the_future_or_over_7_days_ago_is_422(client, counted_at):
    product = new_product(client, 10)

    response = count(client, product["id"], 3, counted_at=stamp(counted_at(datetime.now(UTC))))

    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert problem["errors"][0]["loc"] == ["body", "counted_at"]
    assert quantities(client, product["id"]) == (10, 0, 10)
    assert [m["reason"] for m in movements(client, product["id"])] == ["initial"]


def test_a_count_just_inside_7_days_is_taken(client):
    product = new_product(client, 10)
    response = count(
        client, product["id"], 4, counted_at=stamp(datetime.now(UTC) - timedelta(days=6, hours=23))
    )
    assert response.status_code == 201, response.text
    # The product's opening units were recorded after the count was taken: they are kept,
    # as every on_hand change after `counted_at` is.
    assert quantities(client, product["id"]) == (14, 0, 14)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"on_hand": -1},
        {"on_hand": 2_147_483_648},
        {"on_hand": "5"},
        {"on_hand": 1.5},
        {"on_hand": 5, "counted_at": "yesterday"},
        {"on_hand": 5, "counted_at": "2026-12-08T09:00:00"},  # no offset
        {"on_hand": 5, "reference": "x" * 129},
        {"on_hand": 5, "note": "x" * 501},
        {"on_hand": 5, "delta": 1},
        {"stock": 5},
    ],
)
def test_invalid_counts_are_422_and_change_nothing(client, body):
    product = new_product(client, 10)
    response = client.post(f"/products/{product['id']}/stock-counts", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"
    assert quantities(client, product["id"]) == (10, 0, 10)


def test_counting_an_unknown_or_archived_product_is_404(client):
    archived = new_product(client)
    assert client.delete(f"/products/{archived['id']}").status_code == 204
    for product_id in (archived["id"], 2_147_483_647):
        response = count(client, product_id, 1)
        assert (response.status_code, response.json()["code"]) == (404, "product_not_found")


def test_a_count_retried_with_its_idempotency_key_is_replayed_not_recorded_twice(client):
    product, other = new_product(client, 10), new_product(client, 10)
    key = {"Idempotency-Key": "stocktake-12"}
    counted_at = stamp(datetime.now(UTC))

    first = count(client, product["id"], 6, headers=key, counted_at=counted_at)
    again = count(client, product["id"], 6, headers=key, counted_at=counted_at)

    assert (first.status_code, again.status_code) == (201, 201), again.text
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert len(movements(client, product["id"], reason="counted")) == 1
    for product_id, units in ((product["id"], 5), (other["id"], 6)):
        reused = count(client, product_id, units, headers=key, counted_at=counted_at)
        assert (reused.status_code, reused.json()["code"]) == (422, "idempotency_key_reused")
    # Adjustments keep keys of their own.
    adjusted = client.post(
        f"/products/{product['id']}/stock-adjustments",
        json={"delta": 1, "reason": "received"},
        headers=key,
    )
    assert adjusted.status_code == 201 and "idempotent-replayed" not in adjusted.headers
    assert quantities(client, product["id"]) == (7, 0, 7)


def events_of(client: TestClient, type_: str, at_least: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    while True:
        items = client.get("/events", params={"type": type_, "limit": 100}).json()["items"]
        if len(items) >= at_least or time.monotonic() > deadline:
            return items
        time.sleep(0.05)


def test_a_count_records_stock_adjusted_with_the_product_and_its_movement(client):
    product = new_product(client, 10)

    movement = count(client, product["id"], 4).json()
    unchanged = count(client, product["id"], 4).json()

    events = events_of(client, "stock.adjusted", at_least=2)
    assert [e["data"]["movement"] for e in events] == [movement, unchanged]
    assert events[-1]["data"]["product"] == client.get(f"/products/{product['id']}").json()
    assert events[0]["data"]["product"]["on_hand"] == 4


def test_counts_and_their_corrections_are_counted(client):
    product = new_product(client, 10)
    before = scrape(client)

    count(client, product["id"], 12)  # found 2 more
    count(client, product["id"], 12)  # nothing to correct
    count(client, product["id"], 9)  # 3 fewer
    count(client, product["id"], -1)  # refused

    after = scrape(client)
    assert delta(before, after, "stock_counts_total") == 3
    assert delta(before, after, "stock_count_corrections_total", direction="up") == 1
    assert delta(before, after, "stock_count_corrections_total", direction="down") == 1
    assert delta(before, after, "stock_count_corrected_units_total", direction="up") == 2
    assert delta(before, after, "stock_count_corrected_units_total", direction="down") == 3
