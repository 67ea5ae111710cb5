"""The stock ledger: every change of a product's stock is a movement.

`record_movement` is called by the rule that moves stock (an order, a cancel, an adjustment, a
product's stock set), inside its transaction, with the stock the conditional update returned;
so for every product at every moment, stock = the sum of its movements' deltas, and the newest
movement's `stock_after` is the stock. `audit` checks exactly that. Below both products and
stock: it imports neither.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.core.access import current_actor
from app.core.formats import rfc3339, utcnow
from app.db.base import Connection, Sql
from app.events import outbox
from app.tables import AdjustmentReason, EventType, MovementReason, SystemReason

_RECORD = Sql(
    "INSERT INTO stock_movements (product_id, delta, reason, order_id, reference, note, "
    "stock_after, created_at, actor) VALUES (:product_id, :delta, :reason, :order_id, "
    ":reference, :note, :stock_after, :created_at, :actor) RETURNING id"
)
# Per product: its stock, the sum and count of its movements, and the newest stock_after.
_AUDIT = Sql(
    "SELECT p.id AS product_id, p.stock AS stock, COALESCE(SUM(m.delta), 0) AS total, "
    "COUNT(m.id) AS movements, (SELECT n.stock_after FROM stock_movements n "
    "WHERE n.product_id = p.id ORDER BY n.id DESC LIMIT 1) AS newest "
    "FROM products p LEFT JOIN stock_movements m ON m.product_id = p.id "
    "GROUP BY p.id, p.stock ORDER BY p.id"
)
_REASONS = Sql("SELECT reason, COUNT(*) AS n FROM stock_movements GROUP BY reason")
# Movements whose stock_after is not the running sum of their product's deltas up to them:
# each must have been read from the update it records, in the same transaction.
_BROKEN_CHAIN = Sql(
    "SELECT id, product_id, stock_after, running FROM (SELECT id, product_id, stock_after, "
    "SUM(delta) OVER (PARTITION BY product_id ORDER BY id) AS running FROM stock_movements) "
    "AS chain WHERE stock_after <> running ORDER BY id LIMIT 20"
)


async def record_movement(
    conn: Connection,
    product_id: int,
    delta: int,
    reason: MovementReason | SystemReason | AdjustmentReason,
    order_id: int | None = None,
    reference: str | None = None,
    note: str | None = None,
    *,
    stock_after: int,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Record one movement (in the caller's transaction), made by the current actor
    (app/core/access.py), and return it as the API shows it."""
    movement = {
        "product_id": product_id,
        "delta": delta,
        "reason": MovementReason(reason).value,  # ValueError for a reason of no list
        "order_id": order_id,
        "reference": reference,
        "note": note,
        "stock_after": stock_after,
        "created_at": now or utcnow(),
        "actor": current_actor(),
    }
    movement_id = await conn.fetch_value(_RECORD, movement)
    return {"id": movement_id, **movement}


async def report_adjusted(
    conn: Connection, product: dict[str, Any], movement: Mapping[str, Any]
) -> None:
    """The `stock.adjusted` event of an adjustment or a stock set (the one place it is
    recorded), with the product and the movement as the API shows them after the change."""
    data = {"product": product, "movement": movement_view(movement)}
    await outbox.record(conn, EventType.STOCK_ADJUSTED, data)


def movement_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """A movement as the API shows it (StockMovementPublic's JSON)."""
    return {
        "id": row["id"],
        "product_id": row["product_id"],
        "delta": row["delta"],
        "reason": row["reason"],
        "order_id": row["order_id"],
        "reference": row["reference"],
        "note": row["note"],
        "stock_after": row["stock_after"],
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


def ledger_violations(
    product_id: int, stock: int, total: int, newest_stock_after: int | None
) -> list[str]:
    """What is wrong with one product's ledger: [] when stock = Σ delta = newest stock_after."""
    found = []
    if stock != total:
        found.append(f"product {product_id}: stock {stock} but its movements sum to {total}")
    if newest_stock_after is not None and newest_stock_after != stock:
        found.append(
            f"product {product_id}: stock {stock} but its newest movement says {newest_stock_after}"
        )
    return found


async def audit(conn: Connection) -> Audit:
    """Check the ledger over every product: stock = Σ delta = the newest stock_after, and
    every movement's stock_after is the running sum up to it."""
    result = Audit()
    for row in await conn.fetch_all(_AUDIT):
        result.products += 1
        result.movements += row["movements"]
        result.violations += ledger_violations(
            row["product_id"], row["stock"], row["total"], row["newest"]
        )
    result.by_reason = {row["reason"]: row["n"] for row in await conn.fetch_all(_REASONS)}
    result.violations += [
        f"movement {row['id']} of product {row['product_id']}: stock_after "
        f"{row['stock_after']} but the deltas up to it sum to {row['running']}"
        for row in await conn.fetch_all(_BROKEN_CHAIN)
    ]
    return result
