"""Refunds and returns: money given back on an order, and the units it covers.

A refund is capped by what was paid and not yet refunded, in one conditional update of the
order's `amount_refunded`, so two concurrent refunds can never together exceed the payment. With
items and `restock` `auto`, the units come back: unshipped ones first (released: `committed` −
q), then shipped ones (returned to the shelf: `on_hand` + q); with `none` (damaged goods) no
quantity moves. When a refund releases the last unshipped units, the order's status follows: a
PAID order that shipped nothing is CANCELED (`refunded`), a PARTIALLY_SHIPPED one is SHIPPED.

A provider's refund id is recorded once, whichever path reports it first (this call or the
payment webhook), in either order or at the same instant: the refunds' unique key on it, and the
order's row taken first by both paths, so the second finds the first's refund in its own
transaction. Everything a refund changes commits in the caller's one transaction.
"""

import logging
from dataclasses import dataclass
from typing import Any

import orjson

from app import ledger, orders
from app.core import cursors, metrics
from app.core.access import current_actor
from app.core.currencies import shop_currency
from app.core.errors import ApiError
from app.core.formats import money_text, rfc3339, to_cents, utcnow
from app.core.logs import business_event
from app.db.base import Connection, Sql
from app.events import outbox
from app.schemas import RefundCreate
from app.tables import (
    CancelReason,
    EventType,
    OrderStatus,
    PaymentStatus,
    RefundSource,
    Restock,
    SystemReason,
)

log = logging.getLogger("app.refunds")
CURSOR_KIND = "refunds"

_LOCK_ORDER = Sql(
    sqlite="SELECT id, status, amount_paid_cents, amount_refunded_cents FROM orders "
    "WHERE id = :order_id",
    postgresql="SELECT id, status, amount_paid_cents, amount_refunded_cents FROM orders "
    "WHERE id = :order_id FOR UPDATE",
)
_LINES = Sql(
    "SELECT id, product_id, quantity, unit_price_cents, quantity_shipped, quantity_released, "
    "quantity_returned, quantity_refunded FROM order_lines WHERE order_id = :order_id "
    "ORDER BY product_id"
)
_COLUMNS = (
    "id, order_id, amount_cents, reason, note, items, provider_refund_id, source, actor, created_at"
)
_BY_PROVIDER_ID = Sql(f"SELECT {_COLUMNS} FROM refunds WHERE provider_refund_id = :provider_id")
_INSERT = Sql(
    "INSERT INTO refunds (order_id, amount_cents, reason, note, items, provider_refund_id, "
    "source, actor, created_at) VALUES (:order_id, :amount_cents, :reason, :note, :items, "
    ":provider_refund_id, :source, :actor, :now) "
    f"ON CONFLICT (provider_refund_id) DO NOTHING RETURNING {_COLUMNS}"
)
# Conditional: the money given back never exceeds what was paid, however many refunds race.
_TAKE_MONEY = Sql(
    "UPDATE orders SET amount_refunded_cents = amount_refunded_cents + :amount_cents, "
    "payment_status = CASE WHEN amount_refunded_cents + :amount_cents = amount_paid_cents "
    f"THEN '{PaymentStatus.REFUNDED}' ELSE '{PaymentStatus.PARTIALLY_REFUNDED}' END, "
    "updated_at = :now WHERE id = :order_id "
    "AND amount_refunded_cents + :amount_cents <= amount_paid_cents RETURNING id"
)
_RELEASE = Sql(
    "UPDATE products SET committed = committed - :units, updated_at = :now "
    "WHERE id = :product_id RETURNING on_hand, committed"
)
_RETURN = Sql(
    "UPDATE products SET on_hand = on_hand + :units, updated_at = :now "
    "WHERE id = :product_id RETURNING on_hand, committed"
)
_LINE_COUNTS = Sql(
    "UPDATE order_lines SET quantity_released = quantity_released + :released, "
    "quantity_returned = quantity_returned + :returned, "
    "quantity_refunded = quantity_refunded + :refunded WHERE id = :line_id"
)
_SET_STATUS = Sql(
    "UPDATE orders SET status = :status, cancel_reason = :cancel_reason, updated_at = :now "
    "WHERE id = :order_id"
)
_ONE = Sql(f"SELECT {_COLUMNS} FROM refunds WHERE order_id = :order_id AND id = :refund_id")
_PAGE = Sql(
    f"SELECT {_COLUMNS} FROM refunds WHERE order_id = :order_id ORDER BY id "
    "LIMIT :limit OFFSET :offset"
)
_PAGE_AFTER = Sql(
    f"SELECT {_COLUMNS} FROM refunds WHERE order_id = :order_id AND id > :after ORDER BY id "
    "LIMIT :limit"
)
_COUNT = Sql("SELECT COUNT(*) FROM refunds WHERE order_id = :order_id")
_ORDER_EXISTS = Sql("SELECT id FROM orders WHERE id = :order_id")


# What recording a refund gave: the refund as the API shows it, and whether it was recorded
# before (the same provider refund id, reported again).
@dataclass(frozen=True)
class Recorded:
    refund: dict[str, Any]
    replayed: bool


def refund_view(row: dict[str, Any]) -> dict[str, Any]:
    """A refund as the API shows it (RefundPublic's JSON)."""
    return {
        "id": row["id"],
        "order_id": row["order_id"],
        "amount": money_text(row["amount_cents"]),
        "currency": shop_currency(),
        "reason": row["reason"],
        "note": row["note"],
        "items": orjson.loads(row["items"]),
        "provider_refund_id": row["provider_refund_id"],
        "source": row["source"],
        "actor": row["actor"],
        "created_at": rfc3339(row["created_at"]),
    }


def not_paid(order_id: int) -> ApiError:
    return ApiError(
        "not_paid",
        f"Order {order_id} has nothing paid to refund.",
        order_id=order_id,
    )


def refund_exceeds_paid(order: dict[str, Any], amount_cents: int) -> ApiError:
    refundable = order["amount_paid_cents"] - order["amount_refunded_cents"]
    return ApiError(
        "refund_exceeds_paid",
        f"A refund of {money_text(amount_cents)} is more than order {order['id']}'s "
        f"{money_text(refundable)} paid and not yet refunded.",
        order_id=order["id"],
        requested=money_text(amount_cents),
        refundable=money_text(refundable),
    )


def _item_invalid(message: str, index: int) -> ApiError:
    return ApiError(
        "validation_error",
        message,
        errors=[
            {"loc": ["body", "items", index, "product_id"], "msg": message, "type": "value_error"}
        ],
    )


async def create_refund(
    conn: Connection,
    order_id: int,
    body: RefundCreate,
    *,
    source: RefundSource = RefundSource.API,
) -> Recorded:
    """Record a refund of `order_id` (from the refunds call or, `source` webhook, from the
    payment provider), or find the one already recorded under its provider refund id."""
    order = await conn.fetch_one(_LOCK_ORDER, {"order_id": order_id})
    if order is None:
        raise orders.order_not_found(order_id)
    if body.provider_refund_id is not None:
        earlier = await conn.fetch_one(_BY_PROVIDER_ID, {"provider_id": body.provider_refund_id})
        if earlier is not None:
            return Recorded(refund_view(earlier), replayed=True)
    if order["amount_paid_cents"] == 0:
        raise not_paid(order_id)
    lines = {
        line["product_id"]: line for line in await conn.fetch_all(_LINES, {"order_id": order_id})
    }
    items = body.items or []
    for index, item in enumerate(items):
        if item.product_id not in lines:
            raise _item_invalid(f"Product {item.product_id} is not in order {order_id}.", index)
    for item in sorted(items, key=lambda item: item.product_id):
        line = lines[item.product_id]
        remaining = line["quantity"] - line["quantity_refunded"]
        if item.quantity > remaining:
            raise ApiError(
                "exceeds_remaining",
                f"The order has {remaining} unit(s) of product {item.product_id} left to "
                f"refund; {item.quantity} requested.",
                product_id=item.product_id,
                requested=item.quantity,
                remaining=remaining,
            )
    amount_cents = (
        to_cents(body.amount)
        if body.amount is not None
        else sum(lines[i.product_id]["unit_price_cents"] * i.quantity for i in items)
    )
    if amount_cents <= 0:
        raise ApiError(
            "validation_error",
            "A refund gives back more than 0.",
            errors=[
                {"loc": ["body", "amount"], "msg": "must be more than 0", "type": "value_error"}
            ],
        )
    now = utcnow()
    params = {"order_id": order_id, "amount_cents": amount_cents, "now": now}
    if await conn.fetch_value(_TAKE_MONEY, params) is None:
        raise refund_exceeds_paid(order, amount_cents)
    row = await conn.fetch_one(
        _INSERT,
        {
            **params,
            "reason": None if body.reason is None else body.reason.value,
            "note": body.note,
            "items": orjson.dumps(
                [
                    {"product_id": i.product_id, "quantity": i.quantity, "restock": i.restock.value}
                    for i in items
                ]
            ).decode(),
            "provider_refund_id": body.provider_refund_id,
            "source": RefundSource(source).value,
            "actor": current_actor(),
        },
    )
    if row is None:
        # Another order's refund took this provider id at the same instant (the order lock
        # queues only refunds of one order): the one refund it names is that one.
        earlier = await conn.fetch_one(_BY_PROVIDER_ID, {"provider_id": body.provider_refund_id})
        assert earlier is not None
        raise AlreadyRecorded(Recorded(refund_view(earlier), replayed=True))
    refund_id = row["id"]
    canceled = OrderStatus(order["status"]) == OrderStatus.CANCELED
    for item in sorted(items, key=lambda item: item.product_id):  # products in id order
        await _give_back(
            conn,
            lines[item.product_id],
            item.quantity,
            item.restock,
            canceled,
            order_id,
            refund_id,
            now,
        )
    refund = refund_view(row)
    view = await _follow(conn, order, lines, now, refund)
    await outbox.record(conn, EventType.REFUND_CREATED, {"order": view, "refund": refund})
    metrics.refunded(amount_cents)
    business_event(
        log,
        "order_refunded",
        order_id=order_id,
        refund_id=refund_id,
        amount_cents=amount_cents,
        source=RefundSource(source).value,
    )
    return Recorded(refund, replayed=False)


class AlreadyRecorded(Exception):  # noqa: N818 (an answer, not a failure)
    """The provider refund id is another order's refund, committed while this one was being
    recorded: the caller's unit rolls back (nothing of this refund is kept) and the answer is
    that refund."""

    def __init__(self, recorded: Recorded) -> None:
        super().__init__(recorded.refund["id"])
        self.recorded = recorded


async def _give_back(
    conn: Connection,
    line: dict[str, Any],
    quantity: int,
    restock: Restock,
    canceled: bool,
    order_id: int,
    refund_id: int,
    now: Any,
) -> None:
    """A line's units a refund covers: released (unshipped), then returned (shipped)."""
    released = returned = 0
    if restock == Restock.AUTO:
        # A canceled order's unshipped units were released by its cancel already.
        unshipped = (
            0
            if canceled
            else line["quantity"] - line["quantity_shipped"] - line["quantity_released"]
        )
        released = min(quantity, max(unshipped, 0))
        shipped_back = line["quantity_shipped"] - line["quantity_returned"]
        returned = min(quantity - released, max(shipped_back, 0))
    product_id = line["product_id"]
    for units, statement, reason, on_hand_delta, committed_delta in (
        (released, _RELEASE, SystemReason.ORDER_LINE_RELEASED, 0, -released),
        (returned, _RETURN, SystemReason.ORDER_RETURNED, returned, 0),
    ):
        if not units:
            continue
        after = await conn.fetch_one(
            statement, {"product_id": product_id, "units": units, "now": now}
        )
        assert after is not None
        await ledger.record_movement(
            conn,
            product_id,
            reason,
            on_hand_delta=on_hand_delta,
            committed_delta=committed_delta,
            after=after,
            order_id=order_id,
            refund_id=refund_id,
            now=now,
        )
    await conn.execute(
        _LINE_COUNTS,
        {"line_id": line["id"], "released": released, "returned": returned, "refunded": quantity},
    )
    line["quantity_released"] += released
    line["quantity_returned"] += returned
    line["quantity_refunded"] += quantity


async def _follow(
    conn: Connection,
    order: dict[str, Any],
    lines: dict[int, dict[str, Any]],
    now: Any,
    refund: dict[str, Any],
) -> dict[str, Any]:
    """The order's status after a refund: when no unit remains to ship, a PAID order that
    shipped nothing is CANCELED (`refunded`), a PARTIALLY_SHIPPED one SHIPPED. Its view."""
    current = OrderStatus(order["status"])
    if current not in (OrderStatus.PAID, OrderStatus.PARTIALLY_SHIPPED):
        return await orders.order_view(conn, order["id"])
    unshipped = sum(
        line["quantity"] - line["quantity_shipped"] - line["quantity_released"]
        for line in lines.values()
    )
    if unshipped > 0:
        return await orders.order_view(conn, order["id"])
    shipped_any = any(line["quantity_shipped"] for line in lines.values())
    target = OrderStatus.SHIPPED if shipped_any else OrderStatus.CANCELED
    cancel_reason = None if shipped_any else CancelReason.REFUNDED.value
    await conn.execute(
        _SET_STATUS,
        {
            "status": target.value,
            "cancel_reason": cancel_reason,
            "now": now,
            "order_id": order["id"],
        },
    )
    metrics.order_status_changed(target.value)
    return await orders.moved(conn, order["id"], target, refund=refund)


async def get_refund(conn: Connection, order_id: int, refund_id: int) -> dict[str, Any]:
    row = await conn.fetch_one(_ONE, {"order_id": order_id, "refund_id": refund_id})
    if row is None:
        await _order_exists(conn, order_id)
        raise ApiError("not_found", f"Order {order_id} has no refund {refund_id}.")
    return refund_view(row)


async def _order_exists(conn: Connection, order_id: int) -> None:
    if await conn.fetch_value(_ORDER_EXISTS, {"order_id": order_id}) is None:
        raise orders.order_not_found(order_id)


async def list_refunds(
    conn: Connection,
    order_id: int,
    *,
    limit: int,
    offset: int | None = None,
    after: str | None = None,
) -> dict[str, Any]:
    """An order's refunds, oldest first: by offset (with the total) or after a cursor (of this
    order's list)."""
    await _order_exists(conn, order_id)
    params: dict[str, Any] = {"order_id": order_id, "limit": limit + 1, "offset": offset or 0}
    if after is not None:
        params["after"] = cursors.decode_owned_id(CURSOR_KIND, after, order_id)
    rows = await conn.fetch_all(_PAGE if after is None else _PAGE_AFTER, params)
    more, rows = len(rows) > limit, rows[:limit]
    total = None if after is not None else await conn.fetch_value(_COUNT, params)
    return {
        "items": [refund_view(row) for row in rows],
        "total": total,
        "limit": limit,
        "offset": None if after is not None else offset or 0,
        "next": cursors.encode_ids(CURSOR_KIND, order_id, rows[-1]["id"]) if more else None,
    }
