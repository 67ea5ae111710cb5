"""Applying a verified payment event to its order, exactly once.

The event is recorded in `payment_events` in the same transaction as the order's change, under
a unique event id: a redelivery, even a concurrent one, fails that insert and is answered as a
duplicate with nothing changed. A rejected event rolls back and leaves no record, so the
sender's retry is judged afresh.
"""

from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from app.database import retry_on_conflict, write_transaction
from app.errors import ApiError
from app.orders import invalid_transition, lock_order, move_locked_order
from app.schemas import PaymentEventCreate, PaymentEventReceipt
from app.tables import Order, OrderStatus, PaymentEvent
from app.types import from_cents, to_cents, utcnow

# The status each event type moves a PENDING order to.
TARGETS = {"payment.succeeded": OrderStatus.PAID, "payment.failed": OrderStatus.CANCELED}


@retry_on_conflict()
def apply_event(
    session: Session, event_id: str, signed_at: int, event: PaymentEventCreate, raw_body: bytes
) -> PaymentEventReceipt:
    """Apply a verified event and record it, or answer that it was already applied."""
    try:
        with write_transaction(session):
            # Taking the order's row first queues concurrent events for one order (PostgreSQL;
            # SQLite queues every writer), so a repeat finds the first one's record committed.
            order = lock_order(session, event.order_id)
            session.add(_record(event_id, signed_at, event, raw_body))
            session.flush()  # a repeated event id fails here, before anything else changes
            _move(session, order, event)
            return PaymentEventReceipt(
                event_id=event_id,
                duplicate=False,
                order_id=order.id,
                order_status=OrderStatus(order.status),
            )
    except IntegrityError:
        receipt = duplicate_receipt(session, event_id)
        if receipt is None:
            raise  # some other constraint failed: a bug, not a repeat
        return receipt


def duplicate_receipt(session: Session, event_id: str) -> PaymentEventReceipt | None:
    """The answer to a repeat of a recorded event: its order's status as it is now."""
    session.rollback()
    row = session.exec(
        select(PaymentEvent.order_id, Order.status)
        .join(Order, Order.id == PaymentEvent.order_id)  # type: ignore[arg-type]
        .where(PaymentEvent.event_id == event_id)
    ).first()
    if row is None:
        return None
    return PaymentEventReceipt(
        event_id=event_id, duplicate=True, order_id=row[0], order_status=OrderStatus(row[1])
    )


def _record(
    event_id: str, signed_at: int, event: PaymentEventCreate, raw_body: bytes
) -> PaymentEvent:
    return PaymentEvent(
        event_id=event_id,
        order_id=event.order_id,
        type=event.type,
        payment_id=event.payment_id,
        amount_cents=to_cents(event.amount),
        raw_body=raw_body.decode("utf-8"),
        signed_at=datetime.fromtimestamp(signed_at, UTC),
        processed_at=utcnow(),
    )


def _move(session: Session, order: Order, event: PaymentEventCreate) -> None:
    current, target = OrderStatus(order.status), TARGETS[event.type]
    if event.type == "payment.succeeded" and to_cents(event.amount) != order.total_cents:
        raise amount_mismatch(order, event)
    if event.type == "payment.failed" and current != OrderStatus.PENDING:
        error = invalid_transition(current, target)
        error.detail = (
            f"A payment.failed event cancels only a PENDING order; order "
            f"{order.id} is {current.value}."
        )
        raise error
    # PENDING -> PAID or CANCELED (stock returned); PAID again is a no-op; the rest is 409.
    move_locked_order(session, order, target)


def amount_mismatch(order: Order, event: PaymentEventCreate) -> ApiError:
    total = from_cents(order.total_cents)
    return ApiError(
        422,
        "amount_mismatch",
        "Amount mismatch",
        f"The payment of {event.amount:.2f} does not equal order {order.id}'s total of "
        f"{total:.2f}.",
        order_id=order.id,
        amount=f"{event.amount:.2f}",
        total=f"{total:.2f}",
    )
