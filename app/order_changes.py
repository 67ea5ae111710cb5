"""PUT and PATCH /orders/{id}: a status move, a merge of the order's metadata, or both, in one
transaction. A status move is shipments' (a move to SHIPPED ships what remains) or the order's
own (app/orders.py); a metadata change records `order.updated`."""

from typing import Any

import orjson

from app import orders, shipments
from app.core import etags
from app.core.errors import ApiError
from app.core.formats import METADATA_KEYS, utcnow
from app.db.base import Connection, Sql
from app.events import outbox
from app.schemas import OrderUpdate
from app.tables import EventType

_METADATA = "SELECT metadata_json FROM orders WHERE id = :order_id"
# The row is held (PostgreSQL) until the transaction ends: two merges never lose each other.
_LOCK_METADATA = Sql(sqlite=_METADATA, postgresql=_METADATA + " FOR UPDATE")
_SET_METADATA = Sql(
    "UPDATE orders SET metadata_json = :metadata_json, updated_at = :now WHERE id = :order_id"
)


async def update_order(
    conn: Connection, order_id: int, change: OrderUpdate, *, if_match: str | None = None
) -> dict[str, Any]:
    """Apply `change` (its status first, then its metadata); returns the order's view.
    `if_match` refuses it (412) unless the order is as the client read it, checked with its
    row held so that two writers with one ETag cannot both pass."""
    if if_match is not None:
        await orders.locked_order(conn, order_id)
        etags.require_match(if_match, await orders.order_view(conn, order_id), "order")
    view: dict[str, Any] | None = None
    if change.status is not None:
        view = await shipments.change_status(conn, order_id, change.status)
    if change.metadata is not None:
        view = await merge_metadata(conn, order_id, change.metadata)
    assert view is not None, "OrderUpdate holds a status or metadata"
    return view


async def merge_metadata(
    conn: Connection, order_id: int, change: dict[str, str | None]
) -> dict[str, Any]:
    """Merge `change` into the order's metadata: a key set to null is removed, any other set
    (a new key goes last). A change that changes nothing records nothing; else the order's
    `updated_at` moves and `order.updated` is recorded. 422 if the result has over 50 keys."""
    stored = await conn.fetch_value(_LOCK_METADATA, {"order_id": order_id})
    if stored is None:
        raise orders.order_not_found(order_id)
    current: dict[str, str] = orjson.loads(stored)
    merged = dict(current)
    for key, value in change.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    if len(merged) > METADATA_KEYS:
        raise too_many_keys(len(merged))
    if merged == current and list(merged) == list(current):
        return await orders.order_view(conn, order_id)
    params = {"metadata_json": outbox.dumps(merged), "now": utcnow(), "order_id": order_id}
    await conn.execute(_SET_METADATA, params)
    view = await orders.order_view(conn, order_id)
    await outbox.record(conn, EventType.ORDER_UPDATED, {"order": view})
    return view


def too_many_keys(count: int) -> ApiError:
    message = f"the merged metadata would have {count} keys; at most {METADATA_KEYS} are allowed"
    return ApiError(
        "validation_error",
        f"An order's metadata holds at most {METADATA_KEYS} keys; this change would leave {count}.",
        errors=[
            {"loc": ["body", "metadata"], "msg": message, "type": "value_error", "input": None}
        ],
    )
