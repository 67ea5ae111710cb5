"""The order rules, straight against a session: reservation, all-or-nothing, transitions."""

import pytest
from sqlmodel import Session, func, select

from app import orders
from app.errors import ApiError
from app.schemas import OrderCreate
from app.tables import Order, OrderStatus
from tests.factories import make_order, make_product, stock_of


def test_place_order_takes_each_lines_quantity_and_snapshots_the_product(session: Session):
    mug = make_product(session, name="Mug", price="12.50", stock=10)
    tee = make_product(session, name="Tee", price="20.00", stock=3)

    order = make_order(session, (mug, 2), (tee, 3))

    assert order.status == OrderStatus.PENDING
    assert order.total_cents == 2 * 1250 + 3 * 2000
    assert [(line.name, line.quantity, line.unit_price_cents) for line in order.lines] == [
        ("Mug", 2, 1250),
        ("Tee", 3, 2000),
    ]
    assert stock_of(session, mug.id) == 8
    assert stock_of(session, tee.id) == 0


def test_place_order_insufficient_stock_changes_nothing(session: Session):
    plenty = make_product(session, stock=10)
    scarce = make_product(session, stock=1)

    with pytest.raises(ApiError) as raised:
        make_order(session, (plenty, 5), (scarce, 2))

    assert raised.value.code == "insufficient_stock"
    assert raised.value.extra == {"product_id": scarce.id, "requested": 2, "available": 1}
    assert stock_of(session, plenty.id) == 10
    assert stock_of(session, scarce.id) == 1
    assert session.exec(select(func.count()).select_from(Order)).one() == 0


def test_place_order_unknown_product_is_not_found_and_changes_nothing(session: Session):
    mug = make_product(session, stock=4)

    with pytest.raises(ApiError) as raised:
        orders.place_order(
            session,
            OrderCreate.model_validate(
                {
                    "items": [
                        {"product_id": mug.id, "quantity": 1},
                        {"product_id": 999, "quantity": 1},
                    ]
                }
            ),
        )

    assert (raised.value.status, raised.value.code) == (404, "product_not_found")
    assert raised.value.extra["product_id"] == 999
    assert stock_of(session, mug.id) == 4


def test_archived_product_cannot_be_ordered(session: Session):
    from app import catalog

    mug = make_product(session, stock=4)
    catalog.archive_product(session, mug.id)

    with pytest.raises(ApiError) as raised:
        make_order(session, (mug, 1))

    assert raised.value.code == "product_not_found"


@pytest.mark.parametrize(
    ("path", "final"),
    [
        ([OrderStatus.PAID, OrderStatus.SHIPPED], OrderStatus.SHIPPED),
        ([OrderStatus.CANCELED], OrderStatus.CANCELED),
        ([OrderStatus.PAID, OrderStatus.CANCELED], OrderStatus.CANCELED),
    ],
)
def test_allowed_transitions(session: Session, path, final):
    order = make_order(session, (make_product(session), 1))
    for status in path:
        order = orders.change_status(session, order.id, status)
    assert order.status == final


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ([], OrderStatus.SHIPPED),
        ([OrderStatus.PAID, OrderStatus.SHIPPED], OrderStatus.PENDING),
        ([OrderStatus.PAID, OrderStatus.SHIPPED], OrderStatus.CANCELED),
        ([OrderStatus.CANCELED], OrderStatus.PAID),
        ([OrderStatus.PAID], OrderStatus.PENDING),
    ],
)
def test_forbidden_transitions_name_from_to_and_allowed(session: Session, path, target):
    order = make_order(session, (make_product(session), 1))
    for status in path:
        order = orders.change_status(session, order.id, status)

    with pytest.raises(ApiError) as raised:
        orders.change_status(session, order.id, target)

    error = raised.value
    assert (error.status, error.code) == (409, "invalid_status_transition")
    assert error.extra["from"] == order.status and error.extra["to"] == target.value
    assert error.extra["allowed"] == [s.value for s in orders.TRANSITIONS[order.status]]


def test_setting_the_current_status_is_a_no_op(session: Session):
    order = make_order(session, (make_product(session), 1))
    assert orders.change_status(session, order.id, OrderStatus.PENDING).status == "PENDING"


@pytest.mark.parametrize("before_cancel", [[], [OrderStatus.PAID]])
def test_cancel_restocks_exactly_once(session: Session, before_cancel):
    mug = make_product(session, stock=10)
    order = make_order(session, (mug, 4))
    for status in before_cancel:
        orders.change_status(session, order.id, status)

    orders.change_status(session, order.id, OrderStatus.CANCELED)
    orders.change_status(session, order.id, OrderStatus.CANCELED)

    assert stock_of(session, mug.id) == 10


def test_list_orders_filters_by_status_and_product_newest_first(session: Session):
    mug, tee = make_product(session), make_product(session)
    first = make_order(session, (mug, 1))
    second = make_order(session, (tee, 1))
    third = make_order(session, (mug, 1), (tee, 1))
    orders.change_status(session, second.id, OrderStatus.PAID)

    everything, total = orders.list_orders(session, limit=10, offset=0)
    with_mug, _ = orders.list_orders(session, limit=10, offset=0, product_id=mug.id)
    paid, paid_total = orders.list_orders(session, limit=10, offset=0, status=OrderStatus.PAID)

    assert [o.id for o in everything] == [third.id, second.id, first.id] and total == 3
    assert [o.id for o in with_mug] == [third.id, first.id]
    assert [o.id for o in paid] == [second.id] and paid_total == 1
