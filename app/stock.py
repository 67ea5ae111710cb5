"""The stock ledger and adjustments: every change of a product's stock is a movement.

`record_movement` is called by the rule that moves stock, inside its transaction, with the
stock the conditional update returned; so for every product at every moment, stock = the sum
of its movements' deltas, and the newest movement's `stock_after` is the stock. `audit` checks
exactly that.
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app import catalog, cursors, events
from app.database import Connection, Sql
from app.errors import ApiError
from app.logs import business_event
from app.schemas import StockAdjustmentCreate
from app.tables import AdjustmentReason, EventType, MovementReason
from app.types import rfc3339, utcnow

log = logging.getLogger("app.stock")
CURSOR_KIND = "stock-movements"
ADJUSTMENT_REASONS = frozenset(reason.value for reason in AdjustmentReason)

_RECORD = Sql(
    "INSERT INTO stock_movements (product_id, delta, reason, order_id, reference, note, "
    "stock_after, created_at) VALUES (:product_id, :delta, :reason, :order_id, :reference, "
    ":note, :stock_after, :created_at) RETURNING id"
)
# Relative and conditional: concurrent orders and adjustments never lose each other, and
# stock never goes below zero.
_ADJUST = Sql(
    "UPDATE products SET stock = stock + :delta, updated_at = :now "
    "WHERE id = :product_id AND archived_at IS NULL AND stock + :delta >= 0 RETURNING stock"
)
_STOCK_OF_LIVE = Sql("SELECT stock FROM products WHERE id = :product_id AND archived_at IS NULL")
_COLUMNS = "id, product_id, delta, reason, order_id, reference, note, stock_after, created_at"
_PAGE = Sql(
    f"SELECT {_COLUMNS} FROM stock_movements WHERE product_id = :product_id "
    "ORDER BY id DESC LIMIT :limit OFFSET :offset"
)
_PAGE_AFTER = Sql(
    f"SELECT {_COLUMNS} FROM stock_movements WHERE product_id = :product_id AND id < :after "
    "ORDER BY id DESC LIMIT :limit"
)
_ONE = Sql(f"SELECT {_COLUMNS} FROM stock_movements WHERE product_id = :product_id AND id = :id")
_COUNT = Sql("SELECT COUNT(*) FROM stock_movements WHERE product_id = :product_id")
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
    reason: MovementReason | str,
    order_id: int | None = None,
    reference: str | None = None,
    note: str | None = None,
    *,
    stock_after: int,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Record one movement (in the caller's transaction) and return it as the API shows it."""
    movement = {
        "product_id": product_id,
        "delta": delta,
        "reason": str(reason),
        "order_id": order_id,
        "reference": reference,
        "note": note,
        "stock_after": stock_after,
        "created_at": now or utcnow(),
    }
    movement_id = await conn.fetch_value(_RECORD, movement)
    return {"id": movement_id, **movement}


async def adjust(conn: Connection, product_id: int, body: StockAdjustmentCreate) -> dict[str, Any]:
    """Apply `stock = stock + delta` in one conditional update and record it; the movement."""
    now = utcnow()
    params = {"product_id": product_id, "delta": body.delta, "now": now}
    stock = await conn.fetch_value(_ADJUST, params)
    if stock is None:
        available = await conn.fetch_value(_STOCK_OF_LIVE, params)
        if available is None:
            raise catalog.product_not_found(product_id)
        raise insufficient_stock(product_id, requested=-body.delta, available=available)
    movement = await record_movement(
        conn,
        product_id,
        body.delta,
        body.reason,
        reference=body.reference,
        note=body.note,
        stock_after=stock,
        now=now,
    )
    business_event(
        log,
        "stock_adjusted",
        product_id=product_id,
        delta=body.delta,
        reason=body.reason.value,
        stock_after=stock,
    )
    await report_adjusted(conn, await catalog.get_product(conn, product_id), movement)
    return movement


async def report_adjusted(
    conn: Connection, product: dict[str, Any], movement: Mapping[str, Any]
) -> None:
    """The `stock.adjusted` event of an adjustment or a stock set (the one place it is
    recorded), with the product and the movement as the API shows them after the change."""
    data = {"product": product, "movement": movement_view(movement)}
    await events.record(conn, EventType.STOCK_ADJUSTED, data)


def insufficient_stock(product_id: int, *, requested: int, available: int) -> ApiError:
    return ApiError(
        409,
        "insufficient_stock",
        "Insufficient stock",
        f"Product {product_id} has {available} in stock; {requested} requested.",
        product_id=product_id,
        requested=requested,
        available=available,
    )


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
        "created_at": rfc3339(row["created_at"]),
    }


async def _live_product(conn: Connection, product_id: int) -> None:
    if await conn.fetch_value(_STOCK_OF_LIVE, {"product_id": product_id}) is None:
        raise catalog.product_not_found(product_id)


async def list_movements(
    conn: Connection,
    product_id: int,
    *,
    limit: int,
    offset: int | None = None,
    after: str | None = None,
) -> dict[str, Any]:
    """A product's movements, newest first: by offset (with the total) or after a cursor (of
    this product's list: its cursors hold the product's id)."""
    await _live_product(conn, product_id)
    params: dict[str, Any] = {"product_id": product_id, "limit": limit + 1, "offset": offset or 0}
    if after is not None:
        params["after"] = cursors.decode_owned_id(CURSOR_KIND, after, product_id)
    rows = await conn.fetch_all(_PAGE if after is None else _PAGE_AFTER, params)
    more, rows = len(rows) > limit, rows[:limit]
    total = None if after is not None else await conn.fetch_value(_COUNT, params)
    return {
        "items": [movement_view(row) for row in rows],
        "total": total,
        "limit": limit,
        "offset": None if after is not None else offset or 0,
        "next": cursors.encode_ids(CURSOR_KIND, product_id, rows[-1]["id"]) if more else None,
    }


async def get_movement(conn: Connection, product_id: int, movement_id: int) -> dict[str, Any]:
    await _live_product(conn, product_id)
    row = await conn.fetch_one(_ONE, {"product_id": product_id, "id": movement_id})
    if row is None:
        raise ApiError(
            404,
            "not_found",
            "Movement not found",
            f"Product {product_id} has no stock movement {movement_id}.",
        )
    return movement_view(row)


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
