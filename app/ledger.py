"""The stock ledger: every change of a product's quantities is a movement.

`record_movement` is called by the rule that moves stock (an order, a cancel, a shipment, an
adjustment, a count, a product's stock set), inside its transaction, with the quantities the
conditional update returned; so for every product at every moment, on_hand = the sum of its
movements' on_hand_delta, committed = the sum of their committed_delta, and the newest
movement's *_after are the product's quantities. `audit` checks exactly that, and that
committed is what the orders hold. Below both products and stock: it imports neither.

It is also the one place the stock events are recorded: `report_crossings`, called by
`record_movement` for every movement (and by the PostgreSQL statements that write movements
themselves, app/orders.py), compares `available` before (after − the deltas) and after one
movement, so each crossing is one event in the transaction that crossed, computed from the
values the conditional update returned on the locked row, never from a separate read.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.core.access import current_actor
from app.core.formats import rfc3339, utcnow
from app.db.base import Connection, Sql
from app.events import outbox
from app.product_view import PRODUCT
from app.tables import AdjustmentReason, EventType, MovementReason, SystemReason

# A movement's columns, as `movement_view` reads them.
COLUMNS = (
    "id, product_id, reason, on_hand_delta, committed_delta, on_hand_after, committed_after, "
    "order_id, shipment_id, refund_id, reference, note, actor, created_at"
)
_RECORD = Sql(
    "INSERT INTO stock_movements (product_id, reason, on_hand_delta, committed_delta, "
    "on_hand_after, committed_after, order_id, shipment_id, refund_id, reference, note, "
    "created_at, actor) VALUES (:product_id, :reason, :on_hand_delta, :committed_delta, "
    ":on_hand_after, :committed_after, :order_id, :shipment_id, :refund_id, :reference, :note, "
    ":created_at, :actor) RETURNING id"
)
# Per product: its quantities, the sums and count of its movements, the newest movement's
# quantities, and the units its orders hold (lines neither shipped nor released, of orders
# not canceled).
_AUDIT = Sql(
    "SELECT p.id AS product_id, p.on_hand, p.committed, "
    "COALESCE(SUM(m.on_hand_delta), 0) AS on_hand_sum, "
    "COALESCE(SUM(m.committed_delta), 0) AS committed_sum, COUNT(m.id) AS movements, "
    "(SELECT n.on_hand_after FROM stock_movements n WHERE n.product_id = p.id "
    "ORDER BY n.id DESC LIMIT 1) AS newest_on_hand, "
    "(SELECT n.committed_after FROM stock_movements n WHERE n.product_id = p.id "
    "ORDER BY n.id DESC LIMIT 1) AS newest_committed, "
    "(SELECT COALESCE(SUM(l.quantity - l.quantity_shipped - l.quantity_released), 0) "
    "FROM order_lines l JOIN orders o ON o.id = l.order_id "
    "WHERE l.product_id = p.id AND o.status <> 'CANCELED') AS held "
    "FROM products p LEFT JOIN stock_movements m ON m.product_id = p.id "
    "GROUP BY p.id, p.on_hand, p.committed ORDER BY p.id"
)
_REASONS = Sql("SELECT reason, COUNT(*) AS n FROM stock_movements GROUP BY reason")
# Orders whose money does not add up: what they show refunded is not the sum of their refunds.
# (The schema itself keeps amount_refunded within amount_paid.)
_UNBALANCED_REFUNDS = Sql(
    "SELECT o.id, o.amount_refunded_cents, COALESCE(SUM(r.amount_cents), 0) AS refunded "
    "FROM orders o LEFT JOIN refunds r ON r.order_id = o.id "
    "GROUP BY o.id, o.amount_refunded_cents "
    "HAVING o.amount_refunded_cents <> COALESCE(SUM(r.amount_cents), 0) ORDER BY o.id LIMIT 20"
)
# Movements whose *_after are not the running sums of their product's deltas up to them: each
# must have been read from the update it records, in the same transaction.
_BROKEN_CHAIN = Sql(
    "SELECT id, product_id, on_hand_after, committed_after, on_hand_running, committed_running "
    "FROM (SELECT id, product_id, on_hand_after, committed_after, "
    "SUM(on_hand_delta) OVER (PARTITION BY product_id ORDER BY id) AS on_hand_running, "
    "SUM(committed_delta) OVER (PARTITION BY product_id ORDER BY id) AS committed_running "
    "FROM stock_movements) AS chain WHERE on_hand_after <> on_hand_running "
    "OR committed_after <> committed_running ORDER BY id LIMIT 20"
)


async def record_movement(
    conn: Connection,
    product_id: int,
    reason: MovementReason | SystemReason | AdjustmentReason,
    *,
    on_hand_delta: int = 0,
    committed_delta: int = 0,
    after: Mapping[str, Any],
    order_id: int | None = None,
    shipment_id: int | None = None,
    refund_id: int | None = None,
    reference: str | None = None,
    note: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Record one movement (in the caller's transaction), made by the current actor
    (app/core/access.py); `after` holds the product's `on_hand` and `committed` as the change
    left them. Returns the movement's row."""
    movement = {
        "product_id": product_id,
        "reason": MovementReason(reason).value,  # ValueError for a reason of no list
        "on_hand_delta": on_hand_delta,
        "committed_delta": committed_delta,
        "on_hand_after": after["on_hand"],
        "committed_after": after["committed"],
        "order_id": order_id,
        "shipment_id": shipment_id,
        "refund_id": refund_id,
        "reference": reference,
        "note": note,
        "created_at": now or utcnow(),
        "actor": current_actor(),
    }
    movement_id = await conn.fetch_value(_RECORD, movement)
    recorded = {"id": movement_id, **movement}
    await report_crossings(conn, recorded, threshold=after.get("low_stock_threshold", _UNREAD))
    return recorded


# The threshold when the caller's update did not return it: read on the locked row if needed.
_UNREAD: Any = object()
_THRESHOLD = Sql("SELECT low_stock_threshold FROM products WHERE id = :product_id")
_PRODUCT = Sql.each(
    lambda dialect: f"SELECT {PRODUCT.select(dialect)} FROM products WHERE id = :id"
)


def crossings(before: int, after: int, threshold: int | None) -> list[EventType]:
    """The stock events of `available` moving from `before` to `after`: `stock.low` when it
    falls from ≥ the threshold (if any) to below it, `stock.out` when it falls from > 0 to ≤ 0,
    `stock.replenished` when it rises from ≤ 0 to > 0; in that order."""
    found = []
    if threshold is not None and before >= threshold > after:
        found.append(EventType.STOCK_LOW)
    if before > 0 >= after:
        found.append(EventType.STOCK_OUT)
    if before <= 0 < after:
        found.append(EventType.STOCK_REPLENISHED)
    return found


async def report_crossings(
    conn: Connection, movement: Mapping[str, Any], *, threshold: Any = _UNREAD
) -> None:
    """Record the stock events of one movement (a row of stock_movements' columns), in the
    caller's transaction, after the update that made it (its product row is locked): `available`
    before is the after less the deltas. `threshold` is the product's `low_stock_threshold` when
    the caller's update returned it; otherwise it is read, only when `available` fell. A new
    product's opening units (`initial`) cross nothing: the product did not exist before."""
    if movement["reason"] == SystemReason.INITIAL:
        return  # a new product's opening units: product.created reports them, nothing crossed
    after = movement["on_hand_after"] - movement["committed_after"]
    before = after - (movement["on_hand_delta"] - movement["committed_delta"])
    if after == before:
        return
    if after < before and threshold is _UNREAD:
        threshold = await conn.fetch_value(_THRESHOLD, {"product_id": movement["product_id"]})
    found = crossings(before, after, None if threshold is _UNREAD else threshold)
    if not found:
        return
    row = await conn.fetch_one(_PRODUCT, {"id": movement["product_id"]})
    assert row is not None
    data = {"product": PRODUCT.of(row), "movement": movement_view(movement)}
    for event_type in found:
        await outbox.record(conn, event_type, data)


async def report_adjusted(
    conn: Connection, product: dict[str, Any], movement: Mapping[str, Any]
) -> None:
    """The `stock.adjusted` event of an adjustment or a stock set (the one place it is
    recorded), with the product and the movement as the API shows them after the change."""
    data = {"product": product, "movement": movement_view(movement)}
    await outbox.record(conn, EventType.STOCK_ADJUSTED, data)


def movement_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """A movement as the API shows it (StockMovementPublic's JSON): `delta` and `stock_after`
    are the change of `available` and `available` after it, as earlier versions showed."""
    return {
        "id": row["id"],
        "product_id": row["product_id"],
        "reason": row["reason"],
        "on_hand_delta": row["on_hand_delta"],
        "committed_delta": row["committed_delta"],
        "delta": row["on_hand_delta"] - row["committed_delta"],
        "on_hand_after": row["on_hand_after"],
        "committed_after": row["committed_after"],
        "stock_after": row["on_hand_after"] - row["committed_after"],
        "order_id": row["order_id"],
        "shipment_id": row["shipment_id"],
        "refund_id": row["refund_id"],
        "reference": row["reference"],
        "note": row["note"],
        "actor": row["actor"],
        "created_at": rfc3339(row["created_at"]),
    }


# The ledger's figures, and every product where it does not add up.
@dataclass
class Audit:
    products: int = 0
    movements: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)


def ledger_violations(row: Mapping[str, Any]) -> list[str]:
    """What is wrong with one product's ledger (a row of `_AUDIT`): [] when on_hand = Σ
    on_hand_delta = the newest on_hand_after, committed = Σ committed_delta = the newest
    committed_after = the units its orders hold, and neither is negative."""
    product = f"product {row['product_id']}"
    found = []
    for quantity in ("on_hand", "committed"):
        value, total, newest = row[quantity], row[f"{quantity}_sum"], row[f"newest_{quantity}"]
        if value != total:
            found.append(f"{product}: {quantity} {value} but its movements sum to {total}")
        if newest is not None and newest != value:
            found.append(f"{product}: {quantity} {value} but its newest movement says {newest}")
        if value < 0:
            found.append(f"{product}: {quantity} {value} is negative")
    if row["committed"] != row["held"]:
        found.append(
            f"{product}: committed {row['committed']} but its orders hold {row['held']} units"
        )
    return found


async def audit(conn: Connection) -> Audit:
    """Check the ledger over every product (`ledger_violations`), that every movement's
    *_after are the running sums up to it, and that every order's amount_refunded is the sum
    of its refunds."""
    result = Audit()
    for row in await conn.fetch_all(_AUDIT):
        result.products += 1
        result.movements += row["movements"]
        result.violations += ledger_violations(row)
    result.by_reason = {row["reason"]: row["n"] for row in await conn.fetch_all(_REASONS)}
    result.violations += [
        f"movement {row['id']} of product {row['product_id']}: on_hand_after "
        f"{row['on_hand_after']}, committed_after {row['committed_after']} but the deltas up "
        f"to it sum to {row['on_hand_running']}, {row['committed_running']}"
        for row in await conn.fetch_all(_BROKEN_CHAIN)
    ]
    result.violations += [
        f"order {row['id']}: amount_refunded {row['amount_refunded_cents']} cents but its "
        f"refunds sum to {row['refunded']}"
        for row in await conn.fetch_all(_UNBALANCED_REFUNDS)
    ]
    return result
