"""Applying a verified payment to its order, exactly once, whichever door it came through.

Both webhooks (POST /webhooks/payment and POST /webhooks/stripe, app/stripe_events.py) turn
what they verified into one `Payment`, and `apply_payment` is the one rule that applies it: the
same checks (the shop's currency, the order's total), the same moves, the same record.

The event is recorded in `payment_events` in the same transaction as the order's change, under
a unique (provider, event id): an id one provider chose can never be taken for a repeat of
another's. The duplicate check comes first, before anything the body says: a repeat of a
recorded event id is answered as a duplicate with nothing changed, even if its new body names
another (or no) order; a concurrent repeat waits for the first one's order row, then finds its
record. A rejected event rolls back and leaves no record, so the sender's retry is judged afresh.
"""

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, get_args

from app import orders, refunds
from app.core import metrics
from app.core.currencies import require_shop_currency
from app.core.errors import ApiError
from app.core.formats import money_text, to_cents, utcnow
from app.db.base import Connection, Sql
from app.schemas import PaymentEventCreate, PaymentEventType, RefundCreate
from app.tables import CancelReason, OrderStatus, PaymentProvider, PaymentStatus, RefundSource

# The status each event type (app/schemas.py `PaymentEventType`, the one list) moves a PENDING
# order to, and the one type that records a refund instead; a type of neither, or a status for
# no type, fails at import.
TARGETS: dict[PaymentEventType, OrderStatus] = {
    "payment.succeeded": OrderStatus.PAID,
    "payment.failed": OrderStatus.CANCELED,
}
REFUNDED: PaymentEventType = "payment.refunded"
if set(TARGETS) | {REFUNDED} != set(get_args(PaymentEventType)):
    raise TypeError(f"TARGETS {sorted(TARGETS)} != PaymentEventType {get_args(PaymentEventType)}")

# Webhook deliveries are counted by provider (app/core/metrics.py), one series each.
metrics.webhook_providers(PaymentProvider)

_RECORDED = Sql(
    "SELECT e.order_id, o.status FROM payment_events e JOIN orders o ON o.id = e.order_id "
    "WHERE e.provider = :provider AND e.event_id = :event_id"
)
_PAID_BY = Sql("SELECT id FROM orders WHERE payment_id = :payment_id ORDER BY id LIMIT 1")
# The payment itself, set before the order's move to PAID so its order.paid event shows it.
_PAID = Sql(
    f"UPDATE orders SET payment_status = '{PaymentStatus.PAID}', payment_id = :payment_id, "
    "amount_paid_cents = :amount_cents WHERE id = :order_id "
    f"AND payment_status = '{PaymentStatus.UNPAID}'"
)
_RECORD = Sql(
    "INSERT INTO payment_events (provider, event_id, order_id, type, payment_id, amount_cents, "
    "raw_body, signed_at, processed_at) VALUES (:provider, :event_id, :order_id, :type, "
    ":payment_id, :amount_cents, :raw_body, :signed_at, :processed_at) "
    "ON CONFLICT (provider, event_id) DO NOTHING RETURNING id"
)


# A verified payment event as the rule applies it, from either webhook: who sent it (`provider`,
# `event_id`, when it was signed, the raw body kept for audit) and what it says. `amount_cents`
# is in the currency's minor units (cents: the shop's currency has two decimal places);
# `currency` is None when the sender did not say. A refund carries the provider's `refund_id`;
# one that names no order (`order_id` None: Stripe's refunds name their PaymentIntent) is the
# order that payment paid.
@dataclass(frozen=True)
class Payment:
    provider: PaymentProvider
    event_id: str
    signed_at: int
    raw_body: bytes
    type: PaymentEventType
    order_id: int | None
    amount_cents: int
    currency: str | None
    payment_id: str
    refund_id: str | None = None

    @classmethod
    def of_event(
        cls, event_id: str, signed_at: int, event: PaymentEventCreate, raw_body: bytes
    ) -> "Payment":
        """The body of POST /webhooks/payment as a payment."""
        return cls(
            PaymentProvider.PAYMENT,
            event_id,
            signed_at,
            raw_body,
            event.type,
            event.order_id,
            to_cents(event.amount),
            event.currency,
            event.payment_id,
            event.refund_id,
        )


def _receipt(event_id: str, duplicate: bool, order_id: int, status: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "duplicate": duplicate,
        "order_id": order_id,
        "order_status": status,
    }


async def duplicate_receipt(
    conn: Connection, event_id: str, provider: PaymentProvider = PaymentProvider.PAYMENT
) -> dict[str, Any] | None:
    """The answer to a repeat of a recorded event: its order's status as it is now."""
    row = await conn.fetch_one(_RECORDED, {"provider": provider.value, "event_id": event_id})
    if row is None:
        return None
    return _receipt(event_id, True, row["order_id"], row["status"])


async def apply_event(
    conn: Connection, event_id: str, signed_at: int, event: PaymentEventCreate, raw_body: bytes
) -> dict[str, Any]:
    """Apply a verified POST /webhooks/payment event and record it, or answer that it was
    already applied."""
    return await apply_payment(conn, Payment.of_event(event_id, signed_at, event, raw_body))


async def apply_payment(conn: Connection, payment: Payment) -> dict[str, Any]:
    """Apply a verified payment and record it, or answer that it was already applied."""
    earlier = await duplicate_receipt(conn, payment.event_id, payment.provider)
    if earlier is not None:
        return earlier
    order_id = payment.order_id
    if order_id is None:
        order_id = await conn.fetch_value(_PAID_BY, {"payment_id": payment.payment_id})
        if order_id is None:
            raise ApiError(
                "order_not_found",
                f"No order was paid by payment {payment.payment_id}.",
                payment_id=payment.payment_id,
            )
        payment = replace(payment, order_id=order_id)
    # Taking the order's row first queues concurrent events for one order (PostgreSQL;
    # SQLite queues every writer), so a repeat finds the first one's record committed.
    order = await orders.locked_order(conn, order_id)
    recorded = await conn.fetch_value(
        _RECORD,
        {
            "provider": payment.provider.value,
            "event_id": payment.event_id,
            "order_id": order_id,
            "type": payment.type,
            "payment_id": payment.payment_id,
            "amount_cents": payment.amount_cents,
            "raw_body": payment.raw_body.decode("utf-8"),
            "signed_at": datetime.fromtimestamp(payment.signed_at, UTC),
            "processed_at": utcnow(),
        },
    )
    if recorded is None:
        # A concurrent delivery of this event id committed while we waited for the order.
        repeat = await duplicate_receipt(conn, payment.event_id, payment.provider)
        assert repeat is not None
        return repeat
    if payment.type == REFUNDED:
        return await _refund(conn, order, payment)
    view = await _move(conn, order, payment)
    return _receipt(payment.event_id, False, order_id, view["status"])


async def _refund(conn: Connection, order: dict[str, Any], payment: Payment) -> dict[str, Any]:
    """Record the provider's refund (no items, no stock moved: restocking is the shop's call,
    made with POST /orders/{id}/refunds), once per refund id whichever path reports it first;
    a refund already recorded is answered as a duplicate."""
    require_shop_currency(payment.currency)
    request = RefundCreate(
        amount=Decimal(payment.amount_cents) / 100, provider_refund_id=payment.refund_id
    )
    recorded = await refunds.create_refund(conn, order["id"], request, source=RefundSource.WEBHOOK)
    view = await orders.order_view(conn, order["id"])
    return _receipt(payment.event_id, recorded.replayed, order["id"], view["status"])


async def refund_receipt(
    conn: Connection, payment: Payment, refund: dict[str, Any]
) -> dict[str, Any]:
    """The answer to a refund another order recorded under the same refund id at the same
    instant (app/refunds.py `AlreadyRecorded`): a duplicate, with that order's status now."""
    view = await orders.order_view(conn, refund["order_id"])
    return _receipt(payment.event_id, True, refund["order_id"], view["status"])


async def _move(conn: Connection, order: dict[str, Any], payment: Payment) -> dict:
    current, target = OrderStatus(order["status"]), TARGETS[payment.type]
    require_shop_currency(payment.currency)
    if payment.type == "payment.succeeded" and payment.amount_cents != order["total_cents"]:
        raise amount_mismatch(order, payment.amount_cents)
    if payment.type == "payment.failed" and current != OrderStatus.PENDING:
        raise orders.invalid_transition(
            current,
            target,
            detail=f"A payment.failed event cancels only a PENDING order; order "
            f"{order['id']} is {current.value}.",
        )
    if payment.type == "payment.succeeded" and current == OrderStatus.PENDING:
        params = {"order_id": order["id"], "amount_cents": payment.amount_cents}
        await conn.execute(_PAID, {**params, "payment_id": payment.payment_id})
    # PENDING -> PAID (unless its payment window closed) or CANCELED (stock returned); PAID
    # again is a no-op; the rest is 409.
    return await orders.change_status(conn, order["id"], target, reason=CancelReason.PAYMENT_FAILED)


def amount_mismatch(order: dict[str, Any], amount_cents: int) -> ApiError:
    amount, total = money_text(amount_cents), money_text(order["total_cents"])
    return ApiError(
        "amount_mismatch",
        f"The payment of {amount} does not equal order {order['id']}'s total of {total}.",
        order_id=order["id"],
        amount=amount,
        total=total,
    )
