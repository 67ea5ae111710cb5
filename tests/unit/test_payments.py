"""app.payments straight against a db: each event's effect, exactly once, all or nothing."""

from decimal import Decimal

import pytest

from app import payments, shipments
from app.core.errors import ApiError
from app.schemas import PaymentEventCreate
from app.tables import OrderStatus
from tests.support.factories import Db, Record, make_order, make_product
from tests.support.webhooks import current_order, payment_events, stock_of

SIGNED_AT = 1_790_000_000


@pytest.fixture
def mug(db: Db) -> Record:
    return make_product(db, price="12.50", stock=10)


@pytest.fixture
def order(db: Db, mug: Record) -> Record:
    return make_order(db, (mug, 3))  # total 37.50, stock 10 -> 7


def event(
    order: Record,
    type_: str = "payment.succeeded",
    amount: str = "37.50",
    order_id: int | None = None,
) -> PaymentEventCreate:
    return PaymentEventCreate(
        type=type_, order_id=order_id or order.id, amount=Decimal(amount), payment_id="pay_1"
    )


def apply(db: Db, event_id: str, payment: PaymentEventCreate) -> Record:
    raw = payment.model_dump_json().encode()
    return Record(db.write(payments.apply_event, event_id, SIGNED_AT, payment, raw))


def test_succeeded_pays_the_order_and_records_the_event_with_its_raw_body(db, order):
    payment = event(order)

    receipt = apply(db, "evt_1", payment)

    assert (receipt.duplicate, receipt.order_status) == (False, OrderStatus.PAID)
    assert current_order(db, order.id).status == "PAID"
    [record] = payment_events(db)
    assert record.raw_body == payment.model_dump_json()
    assert record.signed_at.timestamp() == SIGNED_AT
    assert (record.type, record.amount_cents, record.payment_id) == (
        "payment.succeeded",
        3750,
        "pay_1",
    )


def test_failed_cancels_and_returns_the_stock(db, order, mug):
    receipt = apply(db, "evt_1", event(order, "payment.failed"))

    assert receipt.order_status == OrderStatus.CANCELED
    assert stock_of(db, mug.id) == 10


def test_the_same_event_id_twice_is_a_duplicate_with_no_second_effect(db, order, mug):
    apply(db, "evt_1", event(order, "payment.failed"))

    receipt = apply(db, "evt_1", event(order, "payment.failed"))

    assert (receipt.duplicate, receipt.order_id, receipt.order_status) == (
        True,
        order.id,
        OrderStatus.CANCELED,
    )
    assert stock_of(db, mug.id) == 10
    assert len(payment_events(db)) == 1


def test_a_repeat_reports_the_orders_status_now(db, order):
    apply(db, "evt_1", event(order))
    db.write(shipments.change_status, order.id, OrderStatus.SHIPPED)

    assert apply(db, "evt_1", event(order)).order_status == OrderStatus.SHIPPED


def test_amount_mismatch_rolls_back_and_records_nothing(db, order):
    with pytest.raises(ApiError) as raised:
        apply(db, "evt_1", event(order, amount="37.49"))

    assert (raised.value.status, raised.value.code) == (422, "amount_mismatch")
    assert current_order(db, order.id).status == "PENDING"
    assert payment_events(db) == []


def test_failed_for_a_paid_order_is_an_invalid_transition(db, order, mug):
    apply(db, "evt_1", event(order))

    with pytest.raises(ApiError) as raised:
        apply(db, "evt_2", event(order, "payment.failed"))

    assert raised.value.code == "invalid_status_transition"
    assert raised.value.extra["from"] == "PAID"
    assert current_order(db, order.id).status == "PAID"
    assert stock_of(db, mug.id) == 7
    assert len(payment_events(db)) == 1


def test_succeeded_for_a_shipped_order_is_an_invalid_transition(db, order):
    apply(db, "evt_1", event(order))
    db.write(shipments.change_status, order.id, OrderStatus.SHIPPED)

    with pytest.raises(ApiError) as raised:
        apply(db, "evt_2", event(order))

    assert raised.value.code == "invalid_status_transition"
    assert len(payment_events(db)) == 1


def test_unknown_order_is_not_found_and_records_nothing(db, order):
    with pytest.raises(ApiError) as raised:
        apply(db, "evt_1", event(order, order_id=424242))

    assert raised.value.code == "order_not_found"
    assert payment_events(db) == []


def test_a_failed_event_can_be_retried_under_its_id_once_fixed(db, order):
    with pytest.raises(ApiError):
        apply(db, "evt_1", event(order, amount="1.00"))

    assert apply(db, "evt_1", event(order)).duplicate is False
