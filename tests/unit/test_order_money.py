"""The rules of an order's money and links, against a real database (both engines): charges
add up, a negative total places nothing, an external_id is placed once, metadata merges."""

import pytest

from app import order_changes, orders
from app.core.errors import ApiError
from app.schemas import OrderCreate, OrderUpdate
from tests.support.factories import Db, make_product, orders_in_db, stock_of


def order_of(product_id: int, quantity: int = 1, **fields) -> OrderCreate:
    return OrderCreate.model_validate(
        {"items": [{"product_id": product_id, "quantity": quantity}], **fields}
    )


def test_place_order_adds_the_charges_to_the_subtotal(db: Db):
    mug = make_product(db, price="12.50", stock=4)
    charges = [
        {"kind": "shipping", "amount": "5"},
        {"kind": "fee", "amount": "0.99"},
        {"kind": "discount", "amount": "2.49"},
    ]

    view = db.write(orders.place_order, order_of(mug.id, 2, charges=charges))

    assert (view["subtotal"], view["total"]) == ("25.00", "28.50")
    row = db.rows("SELECT subtotal_cents, total_cents, charges FROM orders")[0]
    assert (row["subtotal_cents"], row["total_cents"]) == (2500, 2850)
    assert db.read(orders.order_view, view["id"]) == view


def test_a_total_below_zero_places_nothing(db: Db):
    mug = make_product(db, price="1.00", stock=4)
    with pytest.raises(ApiError) as refused:
        db.write(orders.place_order, order_of(mug.id, charges=[{"kind": "discount", "amount": 2}]))
    assert refused.value.code == "validation_error"
    assert orders_in_db(db) == 0 and stock_of(db, mug.id) == 4


def test_an_external_id_is_placed_once_and_the_second_names_the_first(db: Db):
    mug = make_product(db, stock=4)
    first = db.write(orders.place_order, order_of(mug.id, external_id="ext-1"))
    with pytest.raises(ApiError) as refused:
        db.write(orders.place_order, order_of(mug.id, 3, external_id="ext-1"))
    assert (refused.value.code, refused.value.extra["order_id"]) == (
        "external_id_conflict",
        first["id"],
    )
    assert orders_in_db(db) == 1 and stock_of(db, mug.id) == 3


def test_metadata_merges_removes_and_stays_within_fifty_keys(db: Db):
    mug = make_product(db, stock=4)
    order = db.write(orders.place_order, order_of(mug.id, metadata={"a": "1", "b": "2"}))
    change = OrderUpdate(metadata={"a": None, "c": "3"})

    merged = db.write(order_changes.update_order, order["id"], change)

    assert merged["metadata"] == {"b": "2", "c": "3"}
    too_many = OrderUpdate(metadata={f"k{i}": "v" for i in range(49)})
    with pytest.raises(ApiError) as refused:
        db.write(order_changes.update_order, order["id"], too_many)
    assert refused.value.code == "validation_error"
    assert db.read(orders.order_view, order["id"])["metadata"] == {"b": "2", "c": "3"}
