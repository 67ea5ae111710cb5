"""Shipments: goods leave the shelf for an order, whole or in part.

A shipment takes units of a PAID or PARTIALLY_SHIPPED order: for each line, in one transaction,
`on_hand` − q and `committed` − q (a `shipped` movement), the line's `quantity_shipped` + q; the
order becomes SHIPPED when no unit remains to ship, else PARTIALLY_SHIPPED. The order's row is
held first (PostgreSQL; SQLite's writer turn holds everything), so two shipments of one order,
or a shipment and a cancel, take turns and never ship a unit twice. A status move to SHIPPED is
a shipment of every unit that remains, as clients of earlier versions made it.
"""

import logging
from typing import Any

from app import ledger, orders
from app.core import cursors, etags, metrics
from app.core.access import current_actor
from app.core.errors import ApiError
from app.core.formats import rfc3339, utcnow
from app.core.logs import business_event
from app.db.base import Connection, Sql
from app.events import outbox
from app.schemas import ShipmentCreate
from app.tables import EventType, OrderStatus, SystemReason

log = logging.getLogger("app.shipments")
CURSOR_KIND = "shipments"
# The statuses an order ships from.
SHIPPABLE = (OrderStatus.PAID, OrderStatus.PARTIALLY_SHIPPED)

_LINES = Sql(
    "SELECT id, product_id, sku, quantity, quantity_shipped, quantity_released "
    "FROM order_lines WHERE order_id = :order_id ORDER BY product_id"
)
_INSERT_SHIPMENT = Sql(
    "INSERT INTO shipments (order_id, carrier, tracking_number, tracking_url, actor, created_at) "
    "VALUES (:order_id, :carrier, :tracking_number, :tracking_url, :actor, :now) RETURNING id"
)
# Both quantities at once, and only if the shelf holds the units: a shelf that holds fewer
# than were promised (a loss not yet counted) is found here, not by the order's customer.
_TAKE = Sql(
    "UPDATE products SET on_hand = on_hand - :quantity, committed = committed - :quantity, "
    "updated_at = :now WHERE id = :product_id AND on_hand >= :quantity "
    "RETURNING on_hand, committed"
)
_ON_HAND = Sql("SELECT on_hand FROM products WHERE id = :product_id")
_SHIP_LINE = Sql(
    "UPDATE order_lines SET quantity_shipped = quantity_shipped + :quantity WHERE id = :line_id"
)
_INSERT_ITEM = Sql(
    "INSERT INTO shipment_items (shipment_id, product_id, sku, quantity) "
    "VALUES (:shipment_id, :product_id, :sku, :quantity)"
)
_SET_STATUS = Sql("UPDATE orders SET status = :status, updated_at = :now WHERE id = :order_id")
_COLUMNS = (
    "s.id, s.order_id, s.carrier, s.tracking_number, s.tracking_url, s.actor, s.created_at, "
    "i.product_id, i.sku, i.quantity"
)
_ONE = Sql(
    f"SELECT {_COLUMNS} FROM shipments s JOIN shipment_items i ON i.shipment_id = s.id "
    "WHERE s.order_id = :order_id AND s.id = :shipment_id ORDER BY i.product_id"
)
_PAGE_IDS = "SELECT id FROM shipments WHERE order_id = :order_id{after} ORDER BY id LIMIT :limit"
_PAGE = Sql(
    f"SELECT {_COLUMNS} FROM ({_PAGE_IDS.format(after='')} OFFSET :offset) page "
    "JOIN shipments s ON s.id = page.id JOIN shipment_items i ON i.shipment_id = s.id "
    "ORDER BY s.id, i.product_id"
)
_PAGE_AFTER = Sql(
    f"SELECT {_COLUMNS} FROM ({_PAGE_IDS.format(after=' AND id > :after')}) page "
    "JOIN shipments s ON s.id = page.id JOIN shipment_items i ON i.shipment_id = s.id "
    "ORDER BY s.id, i.product_id"
)
_COUNT = Sql("SELECT COUNT(*) FROM shipments WHERE order_id = :order_id")
_ORDER_EXISTS = Sql("SELECT id FROM orders WHERE id = :order_id")


def _views(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Shipments as the API shows them (ShipmentPublic's JSON), from rows of shipment and item
    columns."""
    views: list[dict[str, Any]] = []
    for row in rows:
        if not views or views[-1]["id"] != row["id"]:
            views.append(
                {
                    "id": row["id"],
                    "order_id": row["order_id"],
                    "items": [],
                    "carrier": row["carrier"],
                    "tracking_number": row["tracking_number"],
                    "tracking_url": row["tracking_url"],
                    "actor": row["actor"],
                    "created_at": rfc3339(row["created_at"]),
                }
            )
        views[-1]["items"].append(
            {"product_id": row["product_id"], "sku": row["sku"], "quantity": row["quantity"]}
        )
    return views


def exceeds_remaining(product_id: int, *, requested: int, remaining: int) -> ApiError:
    return ApiError(
        "exceeds_remaining",
        f"The order has {remaining} unit(s) of product {product_id} left to ship; "
        f"{requested} requested.",
        product_id=product_id,
        requested=requested,
        remaining=remaining,
    )


def _items_invalid(message: str, index: int | None, field: str = "product_id") -> ApiError:
    loc: list[Any] = ["body"] if index is None else ["body", "items", index, field]
    return ApiError(
        "validation_error",
        message,
        errors=[{"loc": loc, "msg": message, "type": "value_error"}],
    )


def _what_to_ship(
    lines: list[dict[str, Any]], body: ShipmentCreate, order_id: int
) -> dict[int, int]:
    """Each product's units this shipment takes, by product id: the body's items, checked
    against what remains of each line, or every unit that remains."""
    remaining = {
        line["product_id"]: line["quantity"] - line["quantity_shipped"] - line["quantity_released"]
        for line in lines
    }
    if body.items is None:
        wanted = {product_id: units for product_id, units in remaining.items() if units > 0}
        if not wanted:
            raise _items_invalid(f"Order {order_id} has nothing left to ship.", None)
        return wanted
    for index, item in enumerate(body.items):
        if item.product_id not in remaining:
            raise _items_invalid(f"Product {item.product_id} is not in order {order_id}.", index)
    for item in sorted(body.items, key=lambda item: item.product_id):
        if item.quantity > remaining[item.product_id]:
            raise exceeds_remaining(
                item.product_id, requested=item.quantity, remaining=remaining[item.product_id]
            )
    return {item.product_id: item.quantity for item in body.items}


async def create_shipment(conn: Connection, order_id: int, body: ShipmentCreate) -> dict[str, Any]:
    """Ship units of an order (all that remain without `items`); returns the shipment."""
    shipment, _ = await _ship(conn, order_id, body)
    return shipment


async def _ship(
    conn: Connection, order_id: int, body: ShipmentCreate
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The shipment and the order's view after it."""
    order = await orders.locked_order(conn, order_id)
    current = OrderStatus(order["status"])
    if current not in SHIPPABLE:
        raise orders.invalid_transition(
            current,
            OrderStatus.SHIPPED,
            detail=f"Order {order_id} is {current.value}: only PAID or PARTIALLY_SHIPPED "
            "orders ship.",
        )
    lines = await conn.fetch_all(_LINES, {"order_id": order_id})
    wanted = _what_to_ship(lines, body, order_id)
    now = utcnow()
    shipment_id = await conn.fetch_value(
        _INSERT_SHIPMENT,
        {
            "order_id": order_id,
            "carrier": body.carrier,
            "tracking_number": body.tracking_number,
            "tracking_url": body.tracking_url,
            "actor": current_actor(),
            "now": now,
        },
    )
    left = 0
    for line in lines:  # in product id order, as every transaction takes products
        product_id = line["product_id"]
        quantity = wanted.get(product_id, 0)
        left += line["quantity"] - line["quantity_shipped"] - line["quantity_released"] - quantity
        if not quantity:
            continue
        params = {"product_id": product_id, "quantity": quantity, "now": now}
        after = await conn.fetch_one(_TAKE, params)
        if after is None:
            on_hand = await conn.fetch_value(_ON_HAND, params)
            raise ApiError(
                "insufficient_on_hand",
                f"Product {product_id} has {on_hand} unit(s) on hand; the shipment takes "
                f"{quantity}. Count the shelf (POST /products/{product_id}/stock-counts) "
                "before shipping.",
                product_id=product_id,
                requested=quantity,
                on_hand=on_hand,
            )
        await conn.execute(_SHIP_LINE, {"line_id": line["id"], "quantity": quantity})
        await conn.execute(
            _INSERT_ITEM,
            {
                "shipment_id": shipment_id,
                "product_id": product_id,
                "sku": line["sku"],
                "quantity": quantity,
            },
        )
        await ledger.record_movement(
            conn,
            product_id,
            SystemReason.SHIPPED,
            on_hand_delta=-quantity,
            committed_delta=-quantity,
            after=after,
            order_id=order_id,
            shipment_id=shipment_id,
            now=now,
        )
    target = OrderStatus.SHIPPED if left == 0 else OrderStatus.PARTIALLY_SHIPPED
    await conn.execute(_SET_STATUS, {"status": target.value, "now": now, "order_id": order_id})
    shipment = _views(
        await conn.fetch_all(_ONE, {"order_id": order_id, "shipment_id": shipment_id})
    )[0]
    if target != current:
        view = await orders.moved(conn, order_id, target, shipment=shipment)
        metrics.order_status_changed(target.value)
    else:
        view = await orders.order_view(conn, order_id)
    await outbox.record(conn, EventType.SHIPMENT_CREATED, {"order": view, "shipment": shipment})
    units = sum(wanted.values())
    metrics.shipped(units)
    business_event(
        log,
        "order_shipped" if target == OrderStatus.SHIPPED else "order_partially_shipped",
        order_id=order_id,
        shipment_id=shipment_id,
        units=units,
    )
    return shipment, view


async def change_status(
    conn: Connection, order_id: int, target: OrderStatus, *, if_match: str | None = None
) -> dict[str, Any]:
    """A status move as PUT/PATCH /orders/{id} make it: to SHIPPED, a shipment of every unit
    that remains (a no-op on a SHIPPED order); PARTIALLY_SHIPPED is never set by a move (only
    a shipment reaches it); any other, the order's own move (app/orders.py). `if_match`
    refuses it unless the order is as the client read it (compared once the row is held)."""
    if target not in orders.SHIPPING:
        return await orders.change_status(conn, order_id, target, if_match=if_match)
    order = await orders.locked_order(conn, order_id)
    if if_match is not None:
        etags.require_match(if_match, await orders.order_view(conn, order_id), "order")
    current = OrderStatus(order["status"])
    if current == target:
        return await orders.order_view(conn, order_id)
    if target == OrderStatus.PARTIALLY_SHIPPED:
        allowed = tuple(s for s in orders.TRANSITIONS[current] if s != target)
        raise orders.invalid_transition(
            current,
            target,
            allowed=allowed,
            detail="PARTIALLY_SHIPPED is reached by shipping part of an order "
            f"(POST /orders/{order_id}/shipments), not set by a status move.",
        )
    if current not in SHIPPABLE:
        raise orders.invalid_transition(current, target)
    _, view = await _ship(conn, order_id, ShipmentCreate())
    return view


async def get_shipment(conn: Connection, order_id: int, shipment_id: int) -> dict[str, Any]:
    views = _views(await conn.fetch_all(_ONE, {"order_id": order_id, "shipment_id": shipment_id}))
    if not views:
        await _order_exists(conn, order_id)
        raise ApiError("not_found", f"Order {order_id} has no shipment {shipment_id}.")
    return views[0]


async def _order_exists(conn: Connection, order_id: int) -> None:
    if await conn.fetch_value(_ORDER_EXISTS, {"order_id": order_id}) is None:
        raise orders.order_not_found(order_id)


async def list_shipments(
    conn: Connection,
    order_id: int,
    *,
    limit: int,
    offset: int | None = None,
    after: str | None = None,
) -> dict[str, Any]:
    """An order's shipments, oldest first: by offset (with the total) or after a cursor (of
    this order's list: its cursors hold the order's id)."""
    await _order_exists(conn, order_id)
    params: dict[str, Any] = {"order_id": order_id, "limit": limit + 1, "offset": offset or 0}
    if after is not None:
        params["after"] = cursors.decode_owned_id(CURSOR_KIND, after, order_id)
    views = _views(await conn.fetch_all(_PAGE if after is None else _PAGE_AFTER, params))
    more, views = len(views) > limit, views[:limit]
    total = None if after is not None else await conn.fetch_value(_COUNT, params)
    return {
        "items": views,
        "total": total,
        "limit": limit,
        "offset": None if after is not None else offset or 0,
        "next": cursors.encode_ids(CURSOR_KIND, order_id, views[-1]["id"]) if more else None,
    }
