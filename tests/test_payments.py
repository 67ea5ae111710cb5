"""app.payments straight against a session: each event's effect, exactly once, all or nothing."""

from decimal import Decimal

import pytest
from sqlmodel import Session

from app import orders, payments
from app.errors import ApiError
from app.schemas import PaymentEventCreate
from app.tables import Order, OrderStatus, Product
from tests.factories import make_order, make_product
from tests.webhooks import current_order, payment_events, stock_of

SIGNED_AT = 1_790_000_000


@pytest.fixture
def mug(session: Session) -> Product:
    return make_product(session, price="12.50", stock=10)


@pytest.fixture
def order(session: Session, mug: Product) -> Order:
    return make_order(session, (mug, 3))  # total 37.50, stock 10 -> 7


def event(
    order: Order,
    type_: str = "payment.succeeded",
    amount: str = "37.50",
    order_id: int | None = None,
) -> PaymentEventCreate:
    return PaymentEventCreate(
        type=type_, order_id=order_id or order.id, amount=Decimal(amount), payment_id="pay_1"
    )


def apply(session: Session, event_id: str, payment: PaymentEventCreate):
    raw = payment.model_dump_json().encode()
    return payments.apply_event(session, event_id, SIGNED_AT, payment, raw)


def test_succeeded_pays_the_order_and_records_the_event_with_its_raw_body(session, order):
    payment = event(order)

    receipt = apply(session, "evt_1", payment)

    assert (receipt.duplicate, receipt.order_status) == (False, OrderStatus.PAID)
    assert current_order(session, order.id).status == "PAID"
    [record] = payment_events(session)
    assert record.raw_body == payment.model_dump_json()
    assert record.signed_at.timestamp() == SIGNED_AT
    assert (record.type, record.amount_cents, record.payment_id) == (
        "payment.succeeded",
        3750,
        "pay_1",
    )


def test_failed_cancels_and_returns_the_stock(session, order, mug):
    receipt = apply(session, "evt_1", event(order, "payment.failed"))

    assert receipt.order_status == OrderStatus.CANCELED
    assert stock_of(session, mug.id) == 10


def test_the_same_event_id_twice_is_a_duplicate_with_no_second_effect(session, order, mug):
    apply(session, "evt_1", event(order, "payment.failed"))

    receipt = apply(session, "evt_1", event(order, "payment.failed"))

    assert (receipt.duplicate, receipt.order_id, receipt.order_status) == (
        True,
        order.id,
        OrderStatus.CANCELED,
    )
    assert stock_of(session, mug.id) == 10
    assert len(payment_events(session)) == 1


def test_a_repeat_reports_the_orders_status_now(session, order):
    apply(session, "evt_1", event(order))
    orders.change_status(session, order.id, OrderStatus.SHIPPED)

    assert apply(session, "evt_1", event(order)).order_status == OrderStatus.SHIPPED


def test_amount_mismatch_rolls_back_and_records_nothing(session, order):
    with pytest.raises(ApiError) as raised:
        apply(session, "evt_1", event(order, amount="37.49"))

    assert (raised.value.status, raised.value.code) == (422, "amount_mismatch")
    assert current_order(session, order.id).status == "PENDING"
    assert payment_events(session) == []


def test_failed_for_a_paid_order_is_an_invalid_transition(session, order, mug):
    apply(session, "evt_1", event(order))

    with pytest.raises(ApiError) as raised:
        apply(session, "evt_2", event(order, "payment.failed"))

    assert raised.value.code == "invalid_status_transition"
    assert raised.value.extra["from"] == "PAID"
    assert current_order(session, order.id).status == "PAID"
    assert stock_of(session, mug.id) == 7
    assert len(payment_events(session)) == 1


def test_succeeded_for_a_shipped_order_is_an_invalid_transition(session, order):
    apply(session, "evt_1", event(order))
    orders.change_status(session, order.id, OrderStatus.SHIPPED)

    with pytest.raises(ApiError) as raised:
        apply(session, "evt_2", event(order))

    assert raised.value.code == "invalid_status_transition"
    assert len(payment_events(session)) == 1


def test_unknown_order_is_not_found_and_records_nothing(session, order):
    with pytest.raises(ApiError) as raised:
        apply(session, "evt_1", event(order, order_id=424242))

    assert raised.value.code == "order_not_found"
    assert payment_events(session) == []


def test_a_failed_event_can_be_retried_under_its_id_once_fixed(session, order):
    with pytest.raises(ApiError):
        apply(session, "evt_1", event(order, amount="1.00"))

    assert apply(session, "evt_1", event(order)).duplicate is False
