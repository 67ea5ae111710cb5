"""Stock adjustments (restocking, write-offs) and a product's movement list.

An adjustment is one conditional update of the product's stock and one movement in the
ledger (app/ledger.py, which records and audits movements for every rule that moves stock).
"""

import logging
from typing import Any

from app import ledger, products
from app.core import cursors
from app.core.errors import ApiError
from app.core.formats import utcnow
from app.core.logs import business_event
from app.db.base import Connection, Sql
from app.schemas import StockAdjustmentCreate
from app.tables import AdjustmentReason

log = logging.getLogger("app.stock")
CURSOR_KIND = "stock-movements"
ADJUSTMENT_REASONS = frozenset(reason.value for reason in AdjustmentReason)

# Relative and conditional: concurrent orders and adjustments never lose each other, and
# stock never goes below zero.
_ADJUST = Sql(
    "UPDATE products SET stock = stock + :delta, updated_at = :now "
    "WHERE id = :product_id AND archived_at IS NULL AND stock + :delta >= 0 RETURNING stock"
)
_STOCK_OF_LIVE = Sql("SELECT stock FROM products WHERE id = :product_id AND archived_at IS NULL")
_COLUMNS = (
    "id, product_id, delta, reason, order_id, reference, note, stock_after, actor, created_at"
)
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


async def adjust(conn: Connection, product_id: int, body: StockAdjustmentCreate) -> dict[str, Any]:
    """Apply `stock = stock + delta` in one conditional update and record it; the movement."""
    now = utcnow()
    params = {"product_id": product_id, "delta": body.delta, "now": now}
    stock = await conn.fetch_value(_ADJUST, params)
    if stock is None:
        available = await conn.fetch_value(_STOCK_OF_LIVE, params)
        if available is None:
            raise products.product_not_found(product_id)
        raise insufficient_stock(product_id, requested=-body.delta, available=available)
    movement = await ledger.record_movement(
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
    await ledger.report_adjusted(conn, await products.get_product(conn, product_id), movement)
    return movement


def insufficient_stock(product_id: int, *, requested: int, available: int) -> ApiError:
    return ApiError(
        "insufficient_stock",
        f"Product {product_id} has {available} in stock; {requested} requested.",
        product_id=product_id,
        requested=requested,
        available=available,
    )


async def _live_product(conn: Connection, product_id: int) -> None:
    if await conn.fetch_value(_STOCK_OF_LIVE, {"product_id": product_id}) is None:
        raise products.product_not_found(product_id)


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
        "items": [ledger.movement_view(row) for row in rows],
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
            "not_found",
            f"Product {product_id} has no stock movement {movement_id}.",
        )
    return ledger.movement_view(row)
