"""The stock ledger over HTTP: adjustments (201/404/409/422, Idempotency-Key), each product's
movements (offset and cursor pages), and a movement for every change of stock."""

import pytest
from fastapi.testclient import TestClient

from tests.support.factories import product_body


def new_product(client: TestClient, stock: int = 10) -> dict:
    response = client.post("/products", json=product_body(stock=stock))
    assert response.status_code == 201, response.text
    return response.json()


def adjust(client: TestClient, product_id: int, delta: int, reason: str = "received", **extra):
    headers = extra.pop("headers", {})
    body = {"delta": delta, "reason": reason, **extra}
    return client.post(f"/products/{product_id}/stock-adjustments", json=body, headers=headers)


def movements(client: TestClient, product_id: int, **params) -> dict:
    response = client.get(f"/products/{product_id}/stock-movements", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def stock_of(client: TestClient, product_id: int) -> int:
    return client.get(f"/products/{product_id}").json()["stock"]


def test_adjustment_adds_to_stock_and_answers_the_movement_with_its_location(client):
    product = new_product(client, stock=10)

    response = adjust(client, product["id"], 50, reference="PO-1142", note="Pallet 3 of 4")

    assert response.status_code == 201, response.text
    movement = response.json()
    assert response.headers["location"] == (
        f"/products/{product['id']}/stock-movements/{movement['id']}"
    )
    assert movement == {
        "id": movement["id"],
        "product_id": product["id"],
        "reason": "received",
        "on_hand_delta": 50,
        "committed_delta": 0,
        "delta": 50,
        "on_hand_after": 60,
        "committed_after": 0,
        "stock_after": 60,
        "order_id": None,
        "shipment_id": None,
        "refund_id": None,
        "reference": "PO-1142",
        "note": "Pallet 3 of 4",
        "actor": "anonymous",
        "created_at": movement["created_at"],
    }
    assert movement["created_at"].endswith("Z")
    assert stock_of(client, product["id"]) == 60
    assert client.get(response.headers["location"]).json() == movement


def test_negative_adjustment_takes_stock_away_down_to_zero(client):
    product = new_product(client, stock=3)

    response = adjust(client, product["id"], -3, "damaged")

    assert response.status_code == 201, response.text
    assert response.json()["stock_after"] == 0
    assert stock_of(client, product["id"]) == 0


def test_adjustment_below_zero_is_409_and_changes_nothing(client):
    product = new_product(client, stock=3)

    response = adjust(client, product["id"], -4, "lost")

    assert response.status_code == 409
    problem = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    assert (problem["code"], problem["product_id"], problem["requested"], problem["available"]) == (
        "insufficient_stock",
        product["id"],
        4,
        3,
    )
    assert stock_of(client, product["id"]) == 3
    assert movements(client, product["id"])["total"] == 1  # the initial movement only


def test_adjusting_an_unknown_or_archived_product_is_404(client):
    archived = new_product(client)
    assert client.delete(f"/products/{archived['id']}").status_code == 204

    for product_id in (archived["id"], 2_147_483_647):
        response = adjust(client, product_id, 1)
        assert response.status_code == 404
        assert response.json()["code"] == "product_not_found"
        listed = client.get(f"/products/{product_id}/stock-movements")
        assert (listed.status_code, listed.json()["code"]) == (404, "product_not_found")


@pytest.mark.parametrize(
    "body",
    [
        {"delta": 0, "reason": "received"},
        {"delta": 1_000_000_001, "reason": "received"},
        {"delta": -1_000_000_001, "reason": "lost"},
        {"delta": "5", "reason": "received"},
        {"delta": 1.5, "reason": "received"},
        {"delta": True, "reason": "received"},
        {"delta": 5, "reason": "initial"},  # the service's own reasons are not the client's
        {"delta": 5, "reason": "stock_set"},
        {"delta": 5, "reason": "restocked"},
        {"delta": 5},
        {"reason": "received"},
        {"delta": 5, "reason": "received", "reference": "x" * 129},
        {"delta": 5, "reason": "received", "note": "x" * 501},
        {"delta": 5, "reason": "received", "note": "nul\u0000"},
        {"delta": 5, "reason": "received", "order_id": 1},
    ],
)
def test_invalid_adjustment_is_422_and_changes_nothing(client, body):
    product = new_product(client, stock=10)

    response = client.post(f"/products/{product['id']}/stock-adjustments", json=body)

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"
    assert stock_of(client, product["id"]) == 10


def test_adjustment_limits_are_inclusive(client):
    product = new_product(client, stock=0)
    assert adjust(client, product["id"], 1_000_000_000).status_code == 201
    assert adjust(client, product["id"], -1_000_000_000, "correction").status_code == 201
    ok = adjust(client, product["id"], 1, reference="x" * 128, note="y" * 500)
    assert ok.status_code == 201, ok.text


def test_adjustment_retried_with_its_idempotency_key_is_replayed_not_applied_twice(client):
    product = new_product(client, stock=10)
    key = {"Idempotency-Key": "delivery-7"}

    first = adjust(client, product["id"], 5, reference="PO-7", headers=key)
    again = adjust(client, product["id"], 5, reference="PO-7", headers=key)

    assert (first.status_code, again.status_code) == (201, 201)
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert stock_of(client, product["id"]) == 15
    assert movements(client, product["id"])["total"] == 2


def test_idempotency_key_with_another_body_or_product_is_422(client):
    product, other = new_product(client), new_product(client)
    key = {"Idempotency-Key": "delivery-8"}
    assert adjust(client, product["id"], 5, headers=key).status_code == 201

    for product_id, delta in ((product["id"], 6), (other["id"], 5)):
        response = adjust(client, product_id, delta, headers=key)
        assert response.status_code == 422
        assert response.json()["code"] == "idempotency_key_reused"
    assert (stock_of(client, product["id"]), stock_of(client, other["id"])) == (15, 10)


def test_a_refused_adjustment_leaves_its_key_free_for_the_retry(client):
    product = new_product(client, stock=2)
    key = {"Idempotency-Key": "write-off-1"}

    assert adjust(client, product["id"], -3, "damaged", headers=key).status_code == 409
    assert (
        adjust(client, product["id"], 1, headers={"Idempotency-Key": "restock"}).status_code == 201
    )
    retried = adjust(client, product["id"], -3, "damaged", headers=key)

    assert retried.status_code == 201, retried.text
    assert "idempotent-replayed" not in retried.headers
    assert stock_of(client, product["id"]) == 0


def test_orders_and_adjustments_keep_their_idempotency_keys_apart(client):
    product = new_product(client, stock=10)
    key = {"Idempotency-Key": "same-key"}

    order = client.post("/orders", json={"product_id": product["id"], "quantity": 2}, headers=key)
    adjustment = adjust(client, product["id"], 4, headers=key)

    assert (order.status_code, adjustment.status_code) == (201, 201), adjustment.text
    assert "idempotent-replayed" not in adjustment.headers
    assert adjustment.json()["stock_after"] == 12


def test_movements_list_every_change_newest_first_with_the_order_they_belong_to(client):
    product = new_product(client, stock=10)
    pid = product["id"]
    order = client.post("/orders", json={"product_id": pid, "quantity": 3}).json()
    adjust(client, pid, 5)
    client.patch(f"/products/{pid}", json={"stock": 20})
    client.patch(f"/products/{pid}", json={"stock": 20, "price": "3.00"})  # stock unchanged
    client.delete(f"/orders/{order['id']}")

    page = movements(client, pid)

    assert [(m["reason"], m["delta"], m["stock_after"], m["order_id"]) for m in page["items"]] == [
        ("order_canceled", 3, 23, order["id"]),
        ("stock_set", 8, 20, None),
        ("received", 5, 12, None),
        ("order_placed", -3, 7, order["id"]),
        ("initial", 10, 10, None),
    ]
    assert (page["total"], page["limit"], page["offset"], page["next"]) == (5, 20, 0, None)
    assert stock_of(client, pid) == 23 == sum(m["delta"] for m in page["items"])


def test_a_product_created_without_stock_has_no_movement(client):
    product = new_product(client, stock=0)
    assert movements(client, product["id"])["items"] == []


def test_movements_page_by_offset_and_by_cursor(client):
    pid = new_product(client, stock=1)["id"]
    for delta in range(1, 7):
        assert adjust(client, pid, delta).status_code == 201
    everything = [m["id"] for m in movements(client, pid, limit=100)["items"]]
    assert everything == sorted(everything, reverse=True) and len(everything) == 7

    by_offset = movements(client, pid, limit=3, offset=3)
    assert [m["id"] for m in by_offset["items"]] == everything[3:6]
    assert (by_offset["total"], by_offset["offset"]) == (7, 3)

    seen, page = [], movements(client, pid, limit=3)
    while True:
        seen += [m["id"] for m in page["items"]]
        if page["next"] is None:
            break
        page = movements(client, pid, limit=3, after=page["next"])
        assert (page["total"], page["offset"]) == (None, None)
    assert seen == everything


@pytest.mark.parametrize(
    "params, code",
    [
        ({"after": "not-a-cursor"}, "invalid_cursor"),
        ({"limit": 0}, "validation_error"),
        ({"limit": 101}, "validation_error"),
        ({"offset": -1}, "validation_error"),
    ],
)
def test_bad_movement_queries_are_422(client, params, code):
    pid = new_product(client)["id"]
    response = client.get(f"/products/{pid}/stock-movements", params=params)
    assert (response.status_code, response.json()["code"]) == (422, code)


def test_a_cursor_of_another_list_or_with_an_offset_is_422(client):
    pid = new_product(client)["id"]
    for _ in range(2):
        client.post("/orders", json={"product_id": pid, "quantity": 1})
    orders_cursor = client.get("/orders", params={"limit": 1}).json()["next"]
    assert orders_cursor is not None
    own_cursor = movements(client, pid, limit=1)["next"]

    foreign = client.get(f"/products/{pid}/stock-movements", params={"after": orders_cursor})
    both = client.get(f"/products/{pid}/stock-movements", params={"after": own_cursor, "offset": 0})

    assert (foreign.status_code, foreign.json()["code"]) == (422, "invalid_cursor")
    assert both.status_code == 422


def test_a_cursor_from_one_products_movements_is_refused_on_anothers(client):
    """The cursor names its product: on another product's list it would page from a foreign
    position (and tell which movement ids exist) instead of being refused."""
    product, other = new_product(client), new_product(client)
    for _ in range(3):
        adjust(client, product["id"], 1)
        adjust(client, other["id"], 1)
    cursor = movements(client, product["id"], limit=1)["next"]
    assert cursor is not None

    own = client.get(f"/products/{product['id']}/stock-movements", params={"after": cursor})
    foreign = client.get(f"/products/{other['id']}/stock-movements", params={"after": cursor})

    assert own.status_code == 200
    assert (foreign.status_code, foreign.json()["code"]) == (422, "invalid_cursor")


def test_a_movement_is_read_only_under_its_own_product(client):
    product, other = new_product(client), new_product(client)
    movement = movements(client, product["id"])["items"][0]

    assert client.get(f"/products/{product['id']}/stock-movements/{movement['id']}").json() == (
        movement
    )
    wrong = client.get(f"/products/{other['id']}/stock-movements/{movement['id']}")
    assert (wrong.status_code, wrong.json()["code"]) == (404, "not_found")


# ------------------------------------------------------------------ the reason filter


def test_movements_filter_by_one_or_several_reasons(client):
    pid = new_product(client, stock=10)["id"]
    order = client.post("/orders", json={"product_id": pid, "quantity": 3}).json()
    adjust(client, pid, 5)
    adjust(client, pid, -1, "damaged")
    client.delete(f"/orders/{order['id']}")

    received = movements(client, pid, reason="received")
    both = client.get(
        f"/products/{pid}/stock-movements",
        params=[("reason", "order_placed"), ("reason", "damaged")],
    ).json()
    none = movements(client, pid, reason="shipped")

    assert [(m["reason"], m["delta"]) for m in received["items"]] == [("received", 5)]
    assert received["total"] == 1
    assert [(m["reason"], m["delta"]) for m in both["items"]] == [
        ("damaged", -1),
        ("order_placed", -3),
    ]
    assert both["total"] == 2
    assert (none["items"], none["total"]) == ([], 0)
    # delta and stock_after keep their meaning: the change of available, and available after.
    placed = both["items"][1]
    assert (placed["on_hand_delta"], placed["committed_delta"], placed["delta"]) == (0, 3, -3)
    assert (placed["on_hand_after"], placed["committed_after"], placed["stock_after"]) == (10, 3, 7)


def test_the_reason_filter_pages_by_offset_and_by_cursor(client):
    pid = new_product(client, stock=1)["id"]
    for n in range(1, 6):
        adjust(client, pid, n)
        adjust(client, pid, -1, "damaged")
    everything = [m["id"] for m in movements(client, pid, reason="received", limit=100)["items"]]
    assert len(everything) == 5

    by_offset = movements(client, pid, reason="received", limit=2, offset=2)
    assert [m["id"] for m in by_offset["items"]] == everything[2:4]
    assert by_offset["total"] == 5
    seen, page = [], movements(client, pid, reason="received", limit=2)
    while True:
        seen += [m["id"] for m in page["items"]]
        assert all(m["reason"] == "received" for m in page["items"])
        if page["next"] is None:
            break
        page = movements(client, pid, reason="received", limit=2, after=page["next"])
    assert seen == everything


@pytest.mark.parametrize("reason", ["restocked", "RECEIVED", "", "stock"])
def test_an_unknown_reason_is_422(client, reason):
    pid = new_product(client)["id"]
    response = client.get(f"/products/{pid}/stock-movements", params={"reason": reason})
    assert (response.status_code, response.json()["code"]) == (422, "validation_error")
    assert response.json()["errors"][0]["loc"][:2] == ["query", "reason"]
