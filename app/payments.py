"""Applying a verified payment event to its order, exactly once.

The event is recorded in `payment_events` in the same transaction as the order's change, under
a unique event id. The duplicate check comes first, before anything the body says: a repeat of
a recorded event id is answered as a duplicate with nothing changed, even if its new body names
another (or no) order; a concurrent repeat waits for the first one's order row, then finds its
record. A rejected event rolls back and leaves no record, so the sender's retry is judged afresh.
"""

from datetime import UTC, datetime
from typing import Any, get_args

from app import orders
from app.core.errors import ApiError
from app.core.formats import from_cents, to_cents, utcnow
from app.db.base import Connection, Sql
from app.schemas import PaymentEventCreate, PaymentEventType
from app.tables import CancelReason, OrderStatus, PaymentStatus

# The status each event type (app/schemas.py `PaymentEventType`, the one list) moves a PENDING
# order to; a type without its status, or a status for no type, fails at import.
TARGETS: dict[PaymentEventType, OrderStatus] = {
    "payment.succeeded": OrderStatus.PAID,
    "payment.failed": OrderStatus.CANCELED,
}
if set(TARGETS) != set(get_args(PaymentEventType)):
    raise TypeError(f"TARGETS {sorted(TARGETS)} != PaymentEventType {get_args(PaymentEventType)}")

_RECORDED = Sql(
    "SELECT e.order_id, o.status FROM payment_events e JOIN orders o ON o.id = e.order_id "
    "WHERE e.event_id = :event_id"
)
_RECORD = Sql(
    "INSERT INTO payment_events (event_id, order_id, type, payment_id, amount_cents, raw_body, "
    "signed_at, processed_at) VALUES (:event_id, :order_id, :type, :payment_id, :amount_cents, "
    ":raw_body, :signed_at, :processed_at) ON CONFLICT (event_id) DO NOTHING RETURNING id"
)

# A payment's money on its order (the total it carried, checked against the order's).
_PAID = Sql(
    f"UPDATE orders SET payment_status = '{PaymentStatus.PAID}', payment_id = :payment_id, "
    "amount_paid_cents = :amount_cents "
    f"WHERE id = :order_id AND payment_status = '{PaymentStatus.UNPAID}'"
)


def _receipt(event_id: str, duplicate: bool, order_id: int, status: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "duplicate": duplicate,
        "order_id": order_id,
        "order_status": status,
    }


async def duplicate_receipt(conn: Connection, event_id: str) -> dict[str, Any] | None:
    """The answer to a repeat of a recorded event: its order's status as it is now."""
    row = await conn.fetch_one(_RECORDED, {"event_id": event_id})
    if row is None:
        return None
    return _receipt(event_id, True, row["order_id"], row["status"])


async def apply_event(
    conn: Connection, event_id: str, signed_at: int, event: PaymentEventCreate, raw_body: bytes
) -> dict[str, Any]:
    """Apply a verified event and record it, or answer that it was already applied."""
    earlier = await duplicate_receipt(conn, event_id)
    if earlier is not None:
        return earlier
    # Taking the order's row first queues concurrent events for one order (PostgreSQL;
    # SQLite queues every writer), so a repeat finds the first one's record committed.
    order = await orders.locked_order(conn, event.order_id)
    recorded = await conn.fetch_value(
        _RECORD,
        {
            "event_id": event_id,
            "order_id": event.order_id,
            "type": event.type,
            "payment_id": event.payment_id,
            "amount_cents": to_cents(event.amount),
            "raw_body": raw_body.decode("utf-8"),
            "signed_at": datetime.fromtimestamp(signed_at, UTC),
            "processed_at": utcnow(),
        },
    )
    if recorded is None:
        # A concurrent delivery of this event id committed while we waited for the order.
        repeat = await duplicate_receipt(conn, event_id)
        assert repeat is not None
        return repeat
    view = await _move(conn, order, event)
    return _receipt(event_id, False, event.order_id, view["status"])


async def _move(conn: Connection, order: dict[str, Any], event: PaymentEventCreate) -> dict:
    current, target = OrderStatus(order["status"]), TARGETS[event.type]
    if event.type == "payment.succeeded" and to_cents(event.amount) != order["total_cents"]:
        raise amount_mismatch(order, event)
    if event.type == "payment.failed" and current != OrderStatus.PENDING:
        raise orders.invalid_transition(
            current,
            target,
            detail=f"A payment.failed event cancels only a PENDING order; order "
            f"{order['id']} is {current.value}.",
        )
    if event.type == "payment.succeeded":
        # The money first, so the move's view and its order.paid event show it; a move the
        # order cannot make rolls it back. An order paid already keeps its first payment.
        params = {"order_id": order["id"], "payment_id": event.payment_id}
        await conn.execute(_PAID, {**params, "amount_cents": to_cents(event.amount)})
    # PENDING -> PAID (unless its payment window closed) or CANCELED (stock returned); PAID
    # again is a no-op; the rest is 409.
    return await orders.change_status(conn, order["id"], target, reason=CancelReason.PAYMENT_FAILED)


def amount_mismatch(order: dict[str, Any], event: PaymentEventCreate) -> ApiError:
    total = from_cents(order["total_cents"])
    return ApiError(
        "amount_mismatch",
        f"The payment of {event.amount:.2f} does not equal order {order['id']}'s total of "
        f"{total:.2f}.",
        order_id=order["id"],
        amount=f"{event.amount:.2f}",
        total=f"{total:.2f}",
    )
