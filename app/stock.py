"""Stock adjustments (restocking, write-offs), stock counts, and a product's movement list.

An adjustment is one conditional update of the product's `on_hand` and one movement in the
ledger (app/ledger.py, which records and audits movements for every rule that moves stock). A
count sets `on_hand` to what was on the shelf when it was counted, plus whatever moved since.
"""

import functools
import logging
from datetime import datetime, timedelta
from typing import Any

from app import ledger, products
from app.core import cursors, metrics
from app.core.errors import ApiError
from app.core.formats import rfc3339, utcnow
from app.core.logs import business_event
from app.db.base import Connection, Sql
from app.schemas import StockAdjustmentCreate, StockCountCreate
from app.tables import AdjustmentReason, MovementReason, SystemReason

log = logging.getLogger("app.stock")
CURSOR_KIND = "stock-movements"
ADJUSTMENT_REASONS = frozenset(reason.value for reason in AdjustmentReason)
# How far back a count may have been taken: the ledger keeps what moved since for as long.
COUNT_WINDOW = timedelta(days=7)

# Relative and conditional: concurrent orders and adjustments never lose each other, and
# on_hand never goes below zero. `available` may (a loss of units already promised).
_ADJUST = Sql(
    "UPDATE products SET on_hand = on_hand + :delta, updated_at = :now "
    "WHERE id = :product_id AND archived_at IS NULL AND on_hand + :delta >= 0 "
    "RETURNING on_hand, committed"
)
_QUANTITIES_OF_LIVE = Sql(
    "SELECT on_hand, committed, counted_at FROM products "
    "WHERE id = :product_id AND archived_at IS NULL"
)
_LOCK_QUANTITIES = Sql(
    sqlite=_QUANTITIES_OF_LIVE.text("sqlite"),
    postgresql=_QUANTITIES_OF_LIVE.text("postgresql") + " FOR UPDATE",
)
# What moved on the shelf after a count was taken (read with the product held, so nothing
# more can move until the count is recorded).
_ON_HAND_MOVED_SINCE = Sql(
    "SELECT COALESCE(SUM(on_hand_delta), 0) FROM stock_movements "
    "WHERE product_id = :product_id AND created_at > :counted_at"
)
_COUNT = Sql(
    "UPDATE products SET on_hand = :on_hand, counted_at = :counted_at, updated_at = :now "
    "WHERE id = :product_id RETURNING on_hand, committed"
)
_PAGE_ORDER = "ORDER BY id DESC"


@functools.cache
def _page_sql(reasons: int, after: bool, count: bool) -> Sql:
    """A page of movements of any of `reasons` reasons (their values bound as :r0, :r1...)."""
    conditions = ["product_id = :product_id"]
    if reasons:
        conditions.append(f"reason IN ({', '.join(f':r{i}' for i in range(reasons))})")
    if after:
        conditions.append("id < :after")
    where = " AND ".join(conditions)
    if count:
        return Sql(f"SELECT COUNT(*) FROM stock_movements WHERE {where}")
    paging = "LIMIT :limit" if after else "LIMIT :limit OFFSET :offset"
    return Sql(f"SELECT {ledger.COLUMNS} FROM stock_movements WHERE {where} {_PAGE_ORDER} {paging}")


_ONE = Sql(
    f"SELECT {ledger.COLUMNS} FROM stock_movements WHERE product_id = :product_id AND id = :id"
)


async def adjust(conn: Connection, product_id: int, body: StockAdjustmentCreate) -> dict[str, Any]:
    """Apply `on_hand = on_hand + delta` in one conditional update and record it; the
    movement."""
    now = utcnow()
    params = {"product_id": product_id, "delta": body.delta, "now": now}
    after = await conn.fetch_one(_ADJUST, params)
    if after is None:
        current = await conn.fetch_one(_QUANTITIES_OF_LIVE, params)
        if current is None:
            raise products.product_not_found(product_id)
        raise insufficient_stock(
            product_id,
            requested=-body.delta,
            available=current["on_hand"] - current["committed"],
            on_hand=current["on_hand"],
        )
    movement = await ledger.record_movement(
        conn,
        product_id,
        body.reason,
        on_hand_delta=body.delta,
        after=after,
        reference=body.reference,
        note=body.note,
        now=now,
    )
    business_event(
        log,
        "stock_adjusted",
        product_id=product_id,
        delta=body.delta,
        reason=body.reason.value,
        on_hand=after["on_hand"],
    )
    await ledger.report_adjusted(conn, await products.get_product(conn, product_id), movement)
    return movement


async def count(conn: Connection, product_id: int, body: StockCountCreate) -> dict[str, Any]:
    """Record that `on_hand` units were on the shelf at `counted_at` (default now): on_hand
    becomes that plus the on_hand changes recorded after it, so units that left or arrived
    since are neither lost nor counted twice. A count older than the product's newest is
    refused: it cannot say what is there now. Returns the `counted` movement, recorded even
    when it corrects nothing (it says when the shelf was last counted)."""
    now = utcnow()
    counted_at = body.counted_at or now
    if counted_at > now:
        raise _count_invalid("counted_at is in the future", body.counted_at)
    if counted_at < now - COUNT_WINDOW:
        raise _count_invalid("counted_at is more than 7 days ago", body.counted_at)
    params = {"product_id": product_id, "counted_at": counted_at, "now": now}
    current = await conn.fetch_one(_LOCK_QUANTITIES, params)
    if current is None:
        raise products.product_not_found(product_id)
    newest = current["counted_at"]
    if newest is not None and counted_at < newest:
        raise ApiError(
            "count_too_old",
            f"Product {product_id} was counted at {rfc3339(newest)}, after this count's "
            f"{rfc3339(counted_at)}: an older count cannot say what is on the shelf now.",
            product_id=product_id,
            counted_at=rfc3339(counted_at),
            newest_count_at=rfc3339(newest),
        )
    moved_since = int(await conn.fetch_value(_ON_HAND_MOVED_SINCE, params))
    # Whatever left after the count was on the shelf when it was taken; never below zero.
    on_hand = max(body.on_hand + moved_since, 0)
    after = await conn.fetch_one(_COUNT, {**params, "on_hand": on_hand})
    assert after is not None
    correction = on_hand - current["on_hand"]
    movement = await ledger.record_movement(
        conn,
        product_id,
        SystemReason.COUNTED,
        on_hand_delta=correction,
        after=after,
        reference=body.reference,
        note=body.note,
        now=now,
    )
    metrics.stock_counted(correction)
    business_event(
        log,
        "stock_counted",
        product_id=product_id,
        counted=body.on_hand,
        moved_since=moved_since,
        correction=correction,
        on_hand=on_hand,
    )
    await ledger.report_adjusted(conn, await products.get_product(conn, product_id), movement)
    return movement


def _count_invalid(message: str, counted_at: datetime | None) -> ApiError:
    return ApiError(
        "validation_error",
        f"{message}: a count may be taken at most 7 days ago, and not in the future.",
        errors=[
            {
                "loc": ["body", "counted_at"],
                "msg": message,
                "type": "value_error",
                "input": None if counted_at is None else rfc3339(counted_at),
            }
        ],
    )


def insufficient_stock(
    product_id: int, *, requested: int, available: int, on_hand: int | None = None
) -> ApiError:
    extra: dict[str, Any] = {} if on_hand is None else {"on_hand": on_hand}
    return ApiError(
        "insufficient_stock",
        f"Product {product_id} has {available} in stock; {requested} requested.",
        product_id=product_id,
        requested=requested,
        available=available,
        **extra,
    )


async def _live_product(conn: Connection, product_id: int) -> None:
    if await conn.fetch_one(_QUANTITIES_OF_LIVE, {"product_id": product_id}) is None:
        raise products.product_not_found(product_id)


async def list_movements(
    conn: Connection,
    product_id: int,
    *,
    limit: int,
    offset: int | None = None,
    after: str | None = None,
    reasons: list[MovementReason] | None = None,
) -> dict[str, Any]:
    """A product's movements, newest first, of any of `reasons` (all when none): by offset
    (with the total) or after a cursor (of this product's list: its cursors hold the
    product's id)."""
    await _live_product(conn, product_id)
    params: dict[str, Any] = {"product_id": product_id, "limit": limit + 1, "offset": offset or 0}
    wanted = sorted({MovementReason(reason).value for reason in reasons or ()})
    params.update({f"r{i}": reason for i, reason in enumerate(wanted)})
    if after is not None:
        params["after"] = cursors.decode_owned_id(CURSOR_KIND, after, product_id)
    rows = await conn.fetch_all(_page_sql(len(wanted), after is not None, False), params)
    more, rows = len(rows) > limit, rows[:limit]
    total = (
        None
        if after is not None
        else await conn.fetch_value(_page_sql(len(wanted), False, True), params)
    )
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
