"""Shipments over HTTP (the contract's "Shipments"): partial and whole, with tracking; what each
moves (on_hand and committed, the lines, the order's status, the ledger); every refusal; the
status move to SHIPPED as a shipment of the rest; idempotency, lists, roles, events, metrics."""

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine

from app.core.access import Role
from app.core.config import Settings
from app.main import create_app
from tests.api.test_metrics import delta, scrape
from tests.support.factories import Db, product_body
from tests.support.serving import serving


def new_product(client: TestClient, on_hand: int = 10) -> dict[str, Any]:
    body = product_body(on_hand=on_hand)
    del body["stock"]
    response = client.post("/products", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def product_of(client: TestClient, product_id: int) -> dict[str, Any]:
    response = client.get(f"/products/{product_id}")
    assert response.status_code == 200, response.text
    return response.json()


def quantities(client: TestClient, product_id: int) -> tuple[int, int, int]:
    product = product_of(client, product_id)
    assert product["stock"] == product["available"] == product["on_hand"] - product["committed"]
    return product["on_hand"], product["committed"], product["available"]


def place(client: TestClient, *lines: tuple[dict[str, Any], int]) -> dict[str, Any]:
    items = [{"product_id": product["id"], "quantity": quantity} for product, quantity in lines]
    response = client.post("/orders", json={"items": items})
    assert response.status_code == 201, response.text
    return response.json()


def paid_order(client: TestClient, *lines: tuple[dict[str, Any], int]) -> dict[str, Any]:
    order = place(client, *lines)
    response = client.patch(f"/orders/{order['id']}", json={"status": "PAID"})
    assert response.status_code == 200, response.text
    return response.json()


def ship(client: TestClient, order_id: int, headers: dict[str, str] | None = None, **body: Any):
    return client.post(f"/orders/{order_id}/shipments", json=body, headers=headers or {})


def shipped_per_line(order: dict[str, Any]) -> dict[int, int]:
    return {line["product_id"]: line["quantity_shipped"] for line in order["items"]}


def movements(client: TestClient, product_id: int, **params: Any) -> list[dict[str, Any]]:
    response = client.get(f"/products/{product_id}/stock-movements", params=params)
    assert response.status_code == 200, response.text
    return response.json()["items"]


@pytest.fixture
def two(client: TestClient) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A mug (10 on hand) and a tee (5 on hand), and a PAID order of 3 mugs and 2 tees."""
    mug, tee = new_product(client, 10), new_product(client, 5)
    return mug, tee, paid_order(client, (mug, 3), (tee, 2))


# ------------------------------------------------------------------ partial, then whole


def test_a_partial_then_a_whole_shipment_move_both_quantities_the_lines_and_the_status(client, two):
    mug, tee, order = two
    assert quantities(client, mug["id"]) == (10, 3, 7)
    assert quantities(client, tee["id"]) == (5, 2, 3)

    first = ship(
        client,
        order["id"],
        items=[{"product_id": mug["id"], "quantity": 1}],
        carrier="DHL",
        tracking_number="JD0146",
        tracking_url="https://www.dhl.com/track?id=JD0146",
    )

    assert first.status_code == 201, first.text
    shipment = first.json()
    assert first.headers["location"] == f"/orders/{order['id']}/shipments/{shipment['id']}"
    assert shipment == {
        "id": shipment["id"],
        "order_id": order["id"],
        "items": [{"product_id": mug["id"], "sku": mug["sku"], "quantity": 1}],
        "carrier": "DHL",
        "tracking_number": "JD0146",
        "tracking_url": "https://www.dhl.com/track?id=JD0146",
        "actor": "anonymous",
        "created_at": shipment["created_at"],
    }
    assert shipment["created_at"].endswith("Z")
    after_first = client.get(f"/orders/{order['id']}").json()
    assert after_first["status"] == "PARTIALLY_SHIPPED"
    assert shipped_per_line(after_first) == {mug["id"]: 1, tee["id"]: 0}
    assert quantities(client, mug["id"]) == (9, 2, 7)  # available unchanged by a shipment
    assert quantities(client, tee["id"]) == (5, 2, 3)
    (shipped,) = movements(client, mug["id"], reason="shipped")
    assert (shipped["on_hand_delta"], shipped["committed_delta"], shipped["delta"]) == (-1, -1, 0)
    assert (shipped["on_hand_after"], shipped["committed_after"], shipped["stock_after"]) == (
        9,
        2,
        7,
    )
    assert (shipped["order_id"], shipped["shipment_id"]) == (order["id"], shipment["id"])

    rest = ship(client, order["id"], carrier="UPS")

    assert rest.status_code == 201, rest.text
    assert sorted((i["product_id"], i["quantity"]) for i in rest.json()["items"]) == sorted(
        [(mug["id"], 2), (tee["id"], 2)]
    )
    after_rest = client.get(f"/orders/{order['id']}").json()
    assert after_rest["status"] == "SHIPPED"
    assert shipped_per_line(after_rest) == {mug["id"]: 3, tee["id"]: 2}
    assert quantities(client, mug["id"]) == (7, 0, 7)
    assert quantities(client, tee["id"]) == (3, 0, 3)
    assert [m["shipment_id"] for m in movements(client, mug["id"], reason="shipped")] == [
        rest.json()["id"],
        shipment["id"],
    ]
    # The ledger adds up: on_hand and committed are the sums of their deltas.
    every = movements(client, mug["id"], limit=100)
    assert sum(m["on_hand_delta"] for m in every) == 7
    assert sum(m["committed_delta"] for m in every) == 0


def test_a_shipment_naming_every_remaining_unit_ships_the_order(client, two):
    mug, tee, order = two
    response = ship(
        client,
        order["id"],
        items=[{"product_id": tee["id"], "quantity": 2}, {"product_id": mug["id"], "quantity": 3}],
    )
    assert response.status_code == 201, response.text
    # Items are shown in product id order, whatever order the request named them in.
    assert [i["product_id"] for i in response.json()["items"]] == sorted([mug["id"], tee["id"]])
    assert client.get(f"/orders/{order['id']}").json()["status"] == "SHIPPED"


def test_a_shipment_without_tracking_shows_nulls(client, two):
    _, _, order = two
    response = ship(client, order["id"])
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["carrier"], body["tracking_number"], body["tracking_url"]) == (None, None, None)


@pytest.mark.parametrize(
    "extra",
    [
        {"tracking_url": "http://www.dhl.com/track?id=1"},
        {"tracking_url": "ftp://example.com/1"},
        {"tracking_url": "https://"},
        {"tracking_url": "not a url"},
        {"tracking_url": "https://" + "a" * 2041},
        {"carrier": ""},
        {"carrier": "x" * 65},
        {"tracking_number": "x" * 129},
        {"tracking_number": "nul\u0000"},
        {"warehouse": "east"},
        {"items": []},
        {"items": [{"product_id": 1}]},
    ],
)
def test_bad_shipment_fields_are_422_and_ship_nothing(client, two, extra):
    mug, _, order = two
    response = ship(client, order["id"], **extra)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"
    assert quantities(client, mug["id"]) == (10, 3, 7)
    assert client.get(f"/orders/{order['id']}").json()["status"] == "PAID"


def test_tracking_fields_at_their_limits_are_accepted(client, two):
    _, _, order = two
    url = "https://t.example/" + "a" * (2048 - len("https://t.example/"))
    response = ship(
        client, order["id"], carrier="c" * 64, tracking_number="n" * 128, tracking_url=url
    )
    assert response.status_code == 201, response.text
    assert response.json()["tracking_url"] == url


# ------------------------------------------------------------------ refusals


def test_more_than_remains_is_409_exceeds_remaining_and_ships_nothing(client, two):
    mug, tee, order = two
    assert (
        ship(client, order["id"], items=[{"product_id": mug["id"], "quantity": 2}]).status_code
        == 201
    )

    response = ship(
        client,
        order["id"],
        items=[{"product_id": tee["id"], "quantity": 1}, {"product_id": mug["id"], "quantity": 2}],
    )

    assert response.status_code == 409, response.text
    problem = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    assert (problem["code"], problem["product_id"], problem["requested"], problem["remaining"]) == (
        "exceeds_remaining",
        mug["id"],
        2,
        1,
    )
    assert quantities(client, mug["id"]) == (8, 1, 7)
    assert quantities(client, tee["id"]) == (5, 2, 3)  # the tee line in the same body: not shipped
    assert len(client.get(f"/orders/{order['id']}/shipments").json()["items"]) == 1


def test_a_shelf_below_what_is_committed_refuses_orders_and_the_shipment(client):
    mug = new_product(client, 5)
    order = paid_order(client, (mug, 4))
    lost = client.post(
        f"/products/{mug['id']}/stock-adjustments", json={"delta": -3, "reason": "lost"}
    )
    assert lost.status_code == 201, lost.text
    assert (lost.json()["on_hand_after"], lost.json()["stock_after"]) == (2, -2)
    assert quantities(client, mug["id"]) == (2, 4, -2)

    refused = client.post("/orders", json={"product_id": mug["id"], "quantity": 1})
    assert refused.status_code == 409
    assert (refused.json()["code"], refused.json()["available"]) == ("insufficient_stock", -2)

    response = ship(client, order["id"])

    assert response.status_code == 409, response.text
    problem = response.json()
    assert (problem["code"], problem["product_id"], problem["requested"], problem["on_hand"]) == (
        "insufficient_on_hand",
        mug["id"],
        4,
        2,
    )
    assert quantities(client, mug["id"]) == (2, 4, -2)
    assert client.get(f"/orders/{order['id']}/shipments").json()["total"] == 0
    # What the shelf holds can still go: a partial shipment within on_hand.
    part = ship(client, order["id"], items=[{"product_id": mug["id"], "quantity": 2}])
    assert part.status_code == 201, part.text
    assert quantities(client, mug["id"]) == (0, 2, -2)


def test_a_shipment_short_on_one_line_ships_none_of_its_lines(client, two):
    """All or nothing: the mug line (taken first, in product id order) is rolled back when the
    tee line finds too few units on the shelf."""
    mug, tee, order = two
    lost = client.post(
        f"/products/{tee['id']}/stock-adjustments", json={"delta": -4, "reason": "lost"}
    )
    assert lost.status_code == 201, lost.text

    response = ship(client, order["id"], carrier="UPS")

    assert response.status_code == 409, response.text
    assert (response.json()["code"], response.json()["product_id"]) == (
        "insufficient_on_hand",
        tee["id"],
    )
    assert quantities(client, mug["id"]) == (10, 3, 7)
    assert quantities(client, tee["id"]) == (1, 2, -1)
    after = client.get(f"/orders/{order['id']}").json()
    assert (after["status"], shipped_per_line(after)) == ("PAID", {mug["id"]: 0, tee["id"]: 0})
    assert client.get(f"/orders/{order['id']}/shipments").json()["total"] == 0
    assert movements(client, mug["id"], reason="shipped") == []
    moved = client.patch(f"/orders/{order['id']}", json={"status": "SHIPPED"})
    assert (moved.status_code, moved.json()["code"]) == (409, "insufficient_on_hand")


@pytest.mark.parametrize("case", ["not in order", "named twice", "zero", "negative", "too big"])
def test_bad_items_are_422_and_ship_nothing(client, two, case):
    mug, tee, order = two
    other = new_product(client, 5)
    items = {
        "not in order": [{"product_id": other["id"], "quantity": 1}],
        "named twice": [
            {"product_id": mug["id"], "quantity": 1},
            {"product_id": mug["id"], "quantity": 1},
        ],
        "zero": [{"product_id": mug["id"], "quantity": 0}],
        "negative": [{"product_id": mug["id"], "quantity": -1}],
        "too big": [{"product_id": mug["id"], "quantity": 10001}],
    }[case]

    response = ship(client, order["id"], items=items)

    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert problem["errors"] and all(error["loc"][0] == "body" for error in problem["errors"])
    assert quantities(client, mug["id"]) == (10, 3, 7)
    assert quantities(client, other["id"]) == (5, 0, 5)
    assert client.get(f"/orders/{order['id']}").json()["status"] == "PAID"


def test_a_shipped_order_has_nothing_left_and_says_so(client, two):
    _, _, order = two
    assert ship(client, order["id"]).status_code == 201

    again = ship(client, order["id"])

    # SHIPPED is final: the order is refused before what remains is looked at.
    assert again.status_code == 409
    assert (again.json()["code"], again.json()["from"], again.json()["allowed"]) == (
        "invalid_status_transition",
        "SHIPPED",
        [],
    )


def test_nothing_left_to_ship_is_422(client, db: Db):
    """A PARTIALLY_SHIPPED order whose every remaining unit a refund released is SHIPPED by the
    contract; with no refunds yet, the state is set up by hand to see the rule refuse it."""
    mug = new_product(client, 10)
    order = paid_order(client, (mug, 2))
    assert (
        ship(client, order["id"], items=[{"product_id": mug["id"], "quantity": 1}]).status_code
        == 201
    )
    db.execute("UPDATE order_lines SET quantity_released = 1 WHERE order_id = :id", id=order["id"])
    db.execute("UPDATE products SET committed = committed - 1 WHERE id = :id", id=mug["id"])

    response = ship(client, order["id"])

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"
    assert "nothing left to ship" in response.json()["detail"]


@pytest.mark.parametrize("status", ["PENDING", "CANCELED", "SHIPPED"])
def test_an_order_that_is_not_paid_or_partly_shipped_is_409_with_allowed(client, status):
    mug = new_product(client, 10)
    order = place(client, (mug, 2))
    if status == "CANCELED":
        assert client.delete(f"/orders/{order['id']}").status_code == 200
    if status == "SHIPPED":
        client.patch(f"/orders/{order['id']}", json={"status": "PAID"})
        assert ship(client, order["id"]).status_code == 201
    before = quantities(client, mug["id"])

    response = ship(client, order["id"])

    assert response.status_code == 409, response.text
    problem = response.json()
    allowed = {"PENDING": ["PAID", "CANCELED"], "CANCELED": [], "SHIPPED": []}[status]
    assert (problem["code"], problem["from"], problem["to"], problem["allowed"]) == (
        "invalid_status_transition",
        status,
        "SHIPPED",
        allowed,
    )
    assert quantities(client, mug["id"]) == before


# ------------------------------------------------------------------ status moves and cancels


def test_patch_shipped_is_a_shipment_of_the_rest_and_is_listed(client, two):
    mug, tee, order = two
    first = ship(client, order["id"], items=[{"product_id": tee["id"], "quantity": 1}])
    assert first.status_code == 201

    moved = client.patch(f"/orders/{order['id']}", json={"status": "SHIPPED"})

    assert moved.status_code == 200, moved.text
    assert moved.json()["status"] == "SHIPPED"
    assert shipped_per_line(moved.json()) == {mug["id"]: 3, tee["id"]: 2}
    assert quantities(client, mug["id"]) == (7, 0, 7)
    assert quantities(client, tee["id"]) == (3, 0, 3)
    listed = client.get(f"/orders/{order['id']}/shipments").json()
    assert listed["total"] == 2
    assert listed["items"][0] == first.json()
    assert sorted((i["product_id"], i["quantity"]) for i in listed["items"][1]["items"]) == sorted(
        [(mug["id"], 3), (tee["id"], 1)]
    )
    # Setting it again is a no-op 200 that ships nothing.
    again = client.put(f"/orders/{order['id']}", json={"status": "SHIPPED"})
    assert (again.status_code, again.json()["status"]) == (200, "SHIPPED")
    assert client.get(f"/orders/{order['id']}/shipments").json()["total"] == 2


def test_patch_shipped_on_a_paid_order_ships_everything(client, two):
    mug, tee, order = two
    moved = client.patch(f"/orders/{order['id']}", json={"status": "SHIPPED"})
    assert (moved.status_code, moved.json()["status"]) == (200, "SHIPPED")
    (shipment,) = client.get(f"/orders/{order['id']}/shipments").json()["items"]
    assert (shipment["carrier"], shipment["tracking_number"]) == (None, None)
    assert quantities(client, mug["id"]) == (7, 0, 7)


@pytest.mark.parametrize("shipped_first", [False, True])
def test_patch_partially_shipped_is_409_with_allowed(client, two, shipped_first):
    mug, _, order = two
    if shipped_first:
        ship(client, order["id"], items=[{"product_id": mug["id"], "quantity": 1}])
    before = client.get(f"/orders/{order['id']}").json()

    response = client.patch(f"/orders/{order['id']}", json={"status": "PARTIALLY_SHIPPED"})

    if shipped_first:  # the status it has: a no-op
        assert (response.status_code, response.json()["status"]) == (200, "PARTIALLY_SHIPPED")
        return
    assert response.status_code == 409, response.text
    problem = response.json()
    assert (problem["code"], problem["from"], problem["to"]) == (
        "invalid_status_transition",
        "PAID",
        "PARTIALLY_SHIPPED",
    )
    assert problem["allowed"] == ["SHIPPED", "CANCELED"]
    assert client.get(f"/orders/{order['id']}").json() == before


def test_patch_partially_shipped_on_a_pending_order_is_409(client):
    order = place(client, (new_product(client, 3), 1))
    response = client.patch(f"/orders/{order['id']}", json={"status": "PARTIALLY_SHIPPED"})
    assert response.status_code == 409
    assert (response.json()["from"], response.json()["allowed"]) == (
        "PENDING",
        ["PAID", "CANCELED"],
    )


def test_canceling_a_paid_order_releases_what_it_committed(client, two):
    mug, tee, order = two

    response = client.delete(f"/orders/{order['id']}")

    assert (response.status_code, response.json()["status"]) == (200, "CANCELED")
    assert quantities(client, mug["id"]) == (10, 0, 10)
    assert quantities(client, tee["id"]) == (5, 0, 5)
    (released,) = movements(client, mug["id"], reason="order_canceled")
    assert (released["on_hand_delta"], released["committed_delta"], released["delta"]) == (0, -3, 3)


def test_a_partly_shipped_order_cannot_be_canceled(client, two):
    mug, _, order = two
    ship(client, order["id"], items=[{"product_id": mug["id"], "quantity": 1}])

    for response in (
        client.delete(f"/orders/{order['id']}"),
        client.patch(f"/orders/{order['id']}", json={"status": "CANCELED"}),
    ):
        assert response.status_code == 409, response.text
        problem = response.json()
        assert (problem["code"], problem["from"], problem["allowed"]) == (
            "invalid_status_transition",
            "PARTIALLY_SHIPPED",
            ["SHIPPED"],
        )
    assert quantities(client, mug["id"]) == (9, 2, 7)


# ------------------------------------------------------------------ idempotency


def test_a_shipment_retried_with_its_idempotency_key_is_replayed_not_shipped_twice(client, two):
    mug, _, order = two
    key = {"Idempotency-Key": "ship-7"}
    body = {"items": [{"product_id": mug["id"], "quantity": 1}], "carrier": "UPS"}

    first = ship(client, order["id"], headers=key, **body)
    again = ship(client, order["id"], headers=key, **body)

    assert (first.status_code, again.status_code) == (201, 201), again.text
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert quantities(client, mug["id"]) == (9, 2, 7)
    assert client.get(f"/orders/{order['id']}/shipments").json()["total"] == 1

    other_body = ship(client, order["id"], headers=key, items=body["items"], carrier="DHL")
    assert (other_body.status_code, other_body.json()["code"]) == (422, "idempotency_key_reused")
    second = paid_order(client, (mug, 1))
    other_order = ship(client, second["id"], headers=key, **body)
    assert (other_order.status_code, other_order.json()["code"]) == (422, "idempotency_key_reused")
    assert quantities(client, mug["id"]) == (9, 3, 6)


def test_a_refused_shipment_leaves_its_key_free(client):
    mug = new_product(client, 5)
    order = place(client, (mug, 2))
    key = {"Idempotency-Key": "ship-early"}
    assert ship(client, order["id"], headers=key).status_code == 409  # still PENDING
    client.patch(f"/orders/{order['id']}", json={"status": "PAID"})

    retried = ship(client, order["id"], headers=key)

    assert retried.status_code == 201, retried.text
    assert "idempotent-replayed" not in retried.headers


# ------------------------------------------------------------------ reading shipments


def test_shipments_list_oldest_first_by_offset_and_cursor_and_read_one(client):
    mug = new_product(client, 10)
    order = paid_order(client, (mug, 5))
    made = []
    for n in range(5):
        response = ship(
            client, order["id"], items=[{"product_id": mug["id"], "quantity": 1}], carrier=f"c{n}"
        )
        assert response.status_code == 201, response.text
        made.append(response.json())
    assert client.get(f"/orders/{order['id']}").json()["status"] == "SHIPPED"

    everything = client.get(f"/orders/{order['id']}/shipments").json()
    assert everything["items"] == made
    assert (everything["total"], everything["limit"], everything["offset"], everything["next"]) == (
        5,
        20,
        0,
        None,
    )
    by_offset = client.get(f"/orders/{order['id']}/shipments", params={"limit": 2, "offset": 3})
    assert by_offset.json()["items"] == made[3:]
    seen, page = [], client.get(f"/orders/{order['id']}/shipments", params={"limit": 2}).json()
    while True:
        seen += page["items"]
        if page["next"] is None:
            break
        page = client.get(
            f"/orders/{order['id']}/shipments", params={"limit": 2, "after": page["next"]}
        ).json()
        assert (page["total"], page["offset"]) == (None, None)
    assert seen == made

    one = client.get(f"/orders/{order['id']}/shipments/{made[2]['id']}")
    assert one.status_code == 200 and one.json() == made[2]
    etag = one.headers["etag"]
    cached = client.get(
        f"/orders/{order['id']}/shipments/{made[2]['id']}", headers={"If-None-Match": etag}
    )
    assert (cached.status_code, cached.headers["etag"], cached.content) == (304, etag, b"")
    slash = client.get(f"/orders/{order['id']}/shipments/")
    assert slash.status_code == 200 and slash.json()["total"] == 5
    head = client.head(f"/orders/{order['id']}/shipments/{made[2]['id']}")
    assert (head.status_code, head.content) == (200, b"")


def test_a_cursor_of_one_orders_shipments_is_refused_on_anothers(client):
    mug = new_product(client, 10)
    first, second = paid_order(client, (mug, 2)), paid_order(client, (mug, 2))
    for order in (first, second):
        for _ in range(2):
            ship(client, order["id"], items=[{"product_id": mug["id"], "quantity": 1}])
    cursor = client.get(f"/orders/{first['id']}/shipments", params={"limit": 1}).json()["next"]
    assert cursor is not None

    foreign = client.get(f"/orders/{second['id']}/shipments", params={"after": cursor})
    both = client.get(f"/orders/{first['id']}/shipments", params={"after": cursor, "offset": 0})

    assert (foreign.status_code, foreign.json()["code"]) == (422, "invalid_cursor")
    assert both.status_code == 422


def test_unknown_orders_and_shipments_are_404(client, two):
    mug, _, order = two
    shipment = ship(client, order["id"]).json()
    other = paid_order(client, (mug, 1))

    cases = [
        ("POST", "/orders/2147483647/shipments", "order_not_found"),
        ("GET", "/orders/2147483647/shipments", "order_not_found"),
        ("GET", f"/orders/2147483647/shipments/{shipment['id']}", "order_not_found"),
        ("GET", f"/orders/{order['id']}/shipments/2147483647", "not_found"),
        ("GET", f"/orders/{other['id']}/shipments/{shipment['id']}", "not_found"),
    ]
    for method, path, code in cases:
        response = client.request(method, path, json={} if method == "POST" else None)
        assert (response.status_code, response.json()["code"]) == (404, code), path
    assert client.get(f"/orders/{other['id']}/shipments").json()["total"] == 0


# ------------------------------------------------------------------ roles and actors

KEYS = {
    Role.FULFILLMENT: ("warehouse", "warehouse-key-3b9d2f1a7e5c"),
    Role.STOREFRONT: ("shop", "shop-key-1e9b37508d4f2a6c"),
    Role.ADMIN: ("ops", "ops-key-7a3d4e605c2e9b1f"),
}


@pytest.fixture
def keyed(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    keys = [SecretStr(f"{name}:{role}:{key}") for role, (name, key) in KEYS.items()]
    with serving(create_app(settings.model_copy(update={"api_keys": keys}), engine)) as client:
        yield client


def as_role(role: Role) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[role][1]}"}


def test_fulfillment_ships_and_the_storefront_may_not(keyed):
    admin = as_role(Role.ADMIN)
    mug = keyed.post("/products", json=product_body(stock=5), headers=admin).json()
    order = keyed.post(
        "/orders", json={"product_id": mug["id"], "quantity": 2}, headers=as_role(Role.STOREFRONT)
    ).json()
    keyed.patch(f"/orders/{order['id']}", json={"status": "PAID"}, headers=admin)

    refused = ship(keyed, order["id"], headers=as_role(Role.STOREFRONT))
    assert refused.status_code == 403
    assert (refused.json()["code"], refused.json()["role"]) == ("forbidden", "storefront")
    listed = keyed.get(f"/orders/{order['id']}/shipments", headers=as_role(Role.STOREFRONT))
    assert listed.status_code == 403

    shipped = ship(keyed, order["id"], headers=as_role(Role.FULFILLMENT))

    assert shipped.status_code == 201, shipped.text
    assert shipped.json()["actor"] == "warehouse"
    (movement,) = keyed.get(
        f"/products/{mug['id']}/stock-movements",
        params={"reason": "shipped"},
        headers=as_role(Role.FULFILLMENT),
    ).json()["items"]
    assert movement["actor"] == "warehouse"
    read = keyed.get(
        f"/orders/{order['id']}/shipments/{shipped.json()['id']}",
        headers=as_role(Role.FULFILLMENT),
    )
    assert read.status_code == 200


# ------------------------------------------------------------------ events and metrics


def events_of(client: TestClient, type_: str, at_least: int) -> list[dict[str, Any]]:
    """The feed's events of one type, once there are `at_least` (on PostgreSQL a transaction
    still open elsewhere holds newer events back until it ends)."""
    deadline = time.monotonic() + 30
    while True:
        items = client.get("/events", params={"type": type_, "limit": 100}).json()["items"]
        if len(items) >= at_least or time.monotonic() > deadline:
            return items
        time.sleep(0.05)


def test_shipments_record_their_events_with_the_order_and_the_shipment(client, two):
    mug, _, order = two
    part = ship(client, order["id"], items=[{"product_id": mug["id"], "quantity": 1}]).json()
    after_part = client.get(f"/orders/{order['id']}").json()
    more = ship(client, order["id"], items=[{"product_id": mug["id"], "quantity": 1}]).json()
    after_more = client.get(f"/orders/{order['id']}").json()
    moved = client.patch(f"/orders/{order['id']}", json={"status": "SHIPPED"}).json()
    (last,) = client.get(f"/orders/{order['id']}/shipments", params={"offset": 2}).json()["items"]

    created = events_of(client, "shipment.created", at_least=3)
    assert [e["data"] for e in created] == [
        {"order": after_part, "shipment": part},
        {"order": after_more, "shipment": more},
        {"order": moved, "shipment": last},
    ]
    assert all(e["actor"] == "anonymous" for e in created)
    (partially,) = events_of(client, "order.partially_shipped", at_least=1)
    assert partially["data"] == {"order": after_part, "shipment": part}
    (shipped,) = events_of(client, "order.shipped", at_least=1)
    assert shipped["data"] == {"order": moved, "shipment": last}
    assert shipped["data"]["order"]["status"] == "SHIPPED"
    # A shipment is no stock adjustment.
    assert events_of(client, "stock.adjusted", at_least=0) == []


def test_a_refused_shipment_records_no_event(client, two):
    mug, _, order = two
    ship(client, order["id"], items=[{"product_id": mug["id"], "quantity": 9}])
    assert events_of(client, "shipment.created", at_least=0) == []


def test_shipments_and_units_shipped_are_counted(client, two):
    mug, tee, order = two
    before = scrape(client)

    ship(client, order["id"], items=[{"product_id": mug["id"], "quantity": 2}])
    ship(client, order["id"], items=[{"product_id": mug["id"], "quantity": 5}])  # refused
    client.patch(f"/orders/{order['id']}", json={"status": "SHIPPED"})

    after = scrape(client)
    assert delta(before, after, "shipments_total") == 2
    assert delta(before, after, "units_shipped_total") == 5
    assert delta(before, after, "order_status_changes_total", status="PARTIALLY_SHIPPED") == 1
    assert delta(before, after, "order_status_changes_total", status="SHIPPED") == 1
