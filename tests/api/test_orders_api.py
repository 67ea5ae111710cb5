"""Orders over HTTP: placing, listing, status moves and cancels, with stock checked."""

import pytest
from fastapi.testclient import TestClient

from tests.support.factories import Db, orders_in_db, product_body, stock_of


def new_product(client: TestClient, **overrides) -> dict:
    return client.post("/products", json=product_body(**overrides)).json()


def stock(db: Db, product_id: int) -> int:
    return stock_of(db, product_id)


def test_place_multi_line_order(client, db: Db):
    mug = new_product(client, price="12.50", stock=10)
    tee = new_product(client, price="20.00", stock=3)

    response = client.post(
        "/orders",
        json={
            "items": [
                {"product_id": tee["id"], "quantity": 3},
                {"product_id": mug["id"], "quantity": 2},
            ]
        },
    )

    assert response.status_code == 201
    order = response.json()
    assert response.headers["location"] == f"/orders/{order['id']}"
    assert order["status"] == "PENDING" and order["total"] == "85.00"
    assert [
        (i["product_id"], i["quantity"], i["unit_price"], i["line_total"]) for i in order["items"]
    ] == [(tee["id"], 3, "20.00", "60.00"), (mug["id"], 2, "12.50", "25.00")]
    assert (stock(db, mug["id"]), stock(db, tee["id"])) == (8, 0)


def test_place_one_line_shorthand(client, db: Db):
    mug = new_product(client, stock=2)
    response = client.post("/orders", json={"product_id": mug["id"], "quantity": 2})
    assert response.status_code == 201 and len(response.json()["items"]) == 1
    assert stock(db, mug["id"]) == 0


def test_insufficient_stock_is_409_and_nothing_moves(client, db: Db):
    plenty, scarce = new_product(client, stock=10), new_product(client, stock=1)

    response = client.post(
        "/orders",
        json={
            "items": [
                {"product_id": plenty["id"], "quantity": 5},
                {"product_id": scarce["id"], "quantity": 2},
            ]
        },
    )

    assert response.status_code == 409
    problem = response.json()
    assert problem["code"] == "insufficient_stock"
    assert (problem["product_id"], problem["requested"], problem["available"]) == (
        scarce["id"],
        2,
        1,
    )
    assert (stock(db, plenty["id"]), stock(db, scarce["id"])) == (10, 1)
    assert orders_in_db(db) == 0


def test_unknown_product_is_404_naming_it_and_nothing_moves(client, db: Db):
    mug = new_product(client, stock=3)
    response = client.post(
        "/orders",
        json={
            "items": [
                {"product_id": mug["id"], "quantity": 1},
                {"product_id": 424242, "quantity": 1},
            ]
        },
    )
    assert response.status_code == 404
    assert response.json()["code"] == "product_not_found"
    assert response.json()["product_id"] == 424242
    assert stock(db, mug["id"]) == 3 and orders_in_db(db) == 0


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"items": []},
        {"items": [{"product_id": 1, "quantity": 0}]},
        {"items": [{"product_id": 1, "quantity": 10_001}]},
        {"items": [{"product_id": 1, "quantity": 1}, {"product_id": 1, "quantity": 2}]},
        {"items": [{"product_id": i, "quantity": 1} for i in range(1, 52)]},
        {"product_id": 1},
        {"product_id": 1, "quantity": 1, "coupon": "X"},
        {"items": [{"product_id": "one", "quantity": 1}]},
        {"items": "lots"},
        {"items": [{"product_id": 1, "quantity": 1.5}]},
        [],
    ],
)
def test_invalid_order_bodies_are_422(client, db: Db, body):
    response = client.post("/orders", json=body)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
    assert orders_in_db(db) == 0


def test_list_orders_newest_first_with_filters(client):
    mug, tee = new_product(client), new_product(client)
    first = client.post("/orders", json={"product_id": mug["id"], "quantity": 1}).json()
    second = client.post("/orders", json={"product_id": tee["id"], "quantity": 1}).json()
    client.put(f"/orders/{second['id']}", json={"status": "PAID"})

    everything = client.get("/orders").json()
    paid = client.get("/orders?status=PAID").json()
    with_mug = client.get(f"/orders?product_id={mug['id']}").json()

    assert [o["id"] for o in everything["items"]] == [second["id"], first["id"]]
    assert (everything["total"], everything["limit"], everything["offset"]) == (2, 20, 0)
    assert [o["id"] for o in paid["items"]] == [second["id"]]
    assert [o["id"] for o in with_mug["items"]] == [first["id"]]
    assert client.get("/orders?status=LOST").status_code == 422


def test_get_order_and_unknown_order(client):
    order = client.post(
        "/orders", json={"product_id": new_product(client)["id"], "quantity": 1}
    ).json()
    assert client.get(f"/orders/{order['id']}").json() == order
    missing = client.get("/orders/31337")
    assert (missing.status_code, missing.json()["code"]) == (404, "order_not_found")


@pytest.mark.parametrize("method", ["put", "patch"])
def test_status_moves_through_its_machine(client, method):
    order = client.post(
        "/orders", json={"product_id": new_product(client)["id"], "quantity": 1}
    ).json()
    move = getattr(client, method)

    paid = move(f"/orders/{order['id']}", json={"status": "PAID"})
    same = move(f"/orders/{order['id']}", json={"status": "PAID"})
    shipped = move(f"/orders/{order['id']}", json={"status": "SHIPPED"})
    back = move(f"/orders/{order['id']}", json={"status": "PENDING"})

    assert [r.status_code for r in (paid, same, shipped)] == [200, 200, 200]
    assert shipped.json()["status"] == "SHIPPED"
    assert back.status_code == 409
    problem = back.json()
    assert problem["code"] == "invalid_status_transition"
    assert (problem["from"], problem["to"], problem["allowed"]) == ("SHIPPED", "PENDING", [])


def test_status_body_takes_status_and_nothing_else(client):
    order = client.post(
        "/orders", json={"product_id": new_product(client)["id"], "quantity": 1}
    ).json()
    for body in ({"status": "PAID", "total": "0"}, {"status": "paid"}, {}, {"items": []}):
        response = client.put(f"/orders/{order['id']}", json=body)
        assert response.status_code == 422, body
    assert client.put("/orders/999999", json={"status": "PAID"}).status_code == 404
    assert client.get(f"/orders/{order['id']}").json()["status"] == "PENDING"


@pytest.mark.parametrize("how", ["delete", "put", "patch"])
def test_cancel_restocks_exactly_once(client, db: Db, how):
    mug = new_product(client, stock=10)
    order = client.post("/orders", json={"product_id": mug["id"], "quantity": 4}).json()
    client.put(f"/orders/{order['id']}", json={"status": "PAID"})

    def cancel():
        if how == "delete":
            return client.delete(f"/orders/{order['id']}")
        return getattr(client, how)(f"/orders/{order['id']}", json={"status": "CANCELED"})

    first, second = cancel(), cancel()

    assert (first.status_code, first.json()["status"]) == (200, "CANCELED")
    assert second.status_code == 200
    assert stock(db, mug["id"]) == 10


def test_shipped_order_cannot_be_canceled(client, db: Db):
    mug = new_product(client, stock=5)
    order = client.post("/orders", json={"product_id": mug["id"], "quantity": 2}).json()
    client.put(f"/orders/{order['id']}", json={"status": "PAID"})
    client.put(f"/orders/{order['id']}", json={"status": "SHIPPED"})

    response = client.delete(f"/orders/{order['id']}")

    assert response.status_code == 409
    assert response.json()["code"] == "invalid_status_transition"
    assert stock(db, mug["id"]) == 3
    assert client.delete("/orders/999999").json()["code"] == "order_not_found"


def test_orders_by_cursor_page_newest_first_without_a_count(client, db: Db):
    mug = new_product(client, stock=50)
    ids = [
        client.post("/orders", json={"product_id": mug["id"], "quantity": 1}).json()["id"]
        for _ in range(5)
    ]
    client.patch(f"/orders/{ids[1]}", json={"status": "PAID"})

    first = client.get("/orders", params={"limit": 2}).json()
    second = client.get("/orders", params={"limit": 2, "after": first["next"]}).json()
    third = client.get("/orders", params={"limit": 2, "after": second["next"]}).json()
    paid = client.get("/orders", params={"status": "PAID"}).json()
    # A cursor belongs to the filters it was issued under.
    refused = client.get("/orders", params={"status": "PAID", "after": first["next"]})

    assert (first["total"], first["offset"], first["limit"]) == (5, 0, 2)
    assert (second["total"], second["offset"]) == (None, None)
    walked = [o["id"] for page in (first, second, third) for o in page["items"]]
    assert walked == sorted(ids, reverse=True)
    assert third["next"] is None
    assert [o["id"] for o in paid["items"]] == [ids[1]]
    assert refused.status_code == 422 and refused.json()["code"] == "invalid_cursor"


def test_orders_filter_by_creation_time(client, db: Db):
    mug = new_product(client, stock=5)
    from datetime import datetime, timedelta

    order = client.post("/orders", json={"product_id": mug["id"], "quantity": 1}).json()
    created = datetime.fromisoformat(order["created_at"].replace("Z", "+00:00"))
    minute = timedelta(minutes=1)

    def total(**params) -> int:
        return client.get("/orders", params=params).json()["total"]

    assert total(created_after=(created - minute).isoformat()) == 1
    assert total(created_after=(created + minute).isoformat()) == 0
    assert total(created_before=(created + minute).isoformat()) == 1
    assert total(created_before=(created - minute).isoformat()) == 0
    naive = client.get("/orders", params={"created_before": "2000-01-01T00:00:00"})
    assert naive.status_code == 422
