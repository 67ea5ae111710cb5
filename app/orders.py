"""Placing orders and moving their status: the stock rules.

Each rule runs inside the transaction its caller's `Database.write` opened, so a rule of
another module (payments, the ledger, events) calls these and adds to the same transaction.
Stock moves only by conditional update, taken in ascending product id order so concurrent
orders cannot deadlock.
"""

import functools
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from app import ledger, stock
from app.core import etags, metrics, sorting
from app.core.access import current_actor
from app.core.currencies import require_shop_currency, shop_currency
from app.core.errors import ApiError
from app.core.formats import MAX_ID, money_text, rfc3339, to_cents, utcnow
from app.core.logs import business_event
from app.db.base import (
    Connection,
    NeedsTransaction,
    RaceLost,
    Sql,
    UniqueViolation,
    money_text_sql,
    one_statement_on_postgresql,
)
from app.db.views import (
    SHOP_CURRENCY_PARAMETER,
    Column,
    Json,
    Money,
    Nested,
    Pair,
    ShopCurrency,
    Time,
    View,
    json_object,
)
from app.events import outbox
from app.products import product_not_found
from app.schemas import OrderCreate, OrderLinePublic, OrderPublic
from app.tables import CancelReason, ChargeKind, OrderStatus, PaymentStatus, SystemReason

# Each status and the statuses it may move to; SHIPPED and CANCELED are final. The moves to
# PARTIALLY_SHIPPED and SHIPPED are shipments' (app/shipments.py), which move the goods too.
TRANSITIONS: dict[OrderStatus, tuple[OrderStatus, ...]] = {
    OrderStatus.PENDING: (OrderStatus.PAID, OrderStatus.CANCELED),
    OrderStatus.PAID: (OrderStatus.PARTIALLY_SHIPPED, OrderStatus.SHIPPED, OrderStatus.CANCELED),
    OrderStatus.PARTIALLY_SHIPPED: (OrderStatus.SHIPPED,),
    OrderStatus.SHIPPED: (),
    OrderStatus.CANCELED: (),
}
# The metric of status moves is labelled by the statuses an order can move to.
metrics.order_statuses(
    status for status in OrderStatus if any(status in moves for moves in TRANSITIONS.values())
)
CURSOR_KIND = "orders"
# The statuses only a shipment moves an order to.
SHIPPING = (OrderStatus.PARTIALLY_SHIPPED, OrderStatus.SHIPPED)
# At most this many orders expire in one transaction (the sweeper runs again for the rest).
EXPIRY_BATCH = 100
log = logging.getLogger("app.orders")


# An order and its lines as the API shows them (OrderPublic, OrderLinePublic): how each field
# is made from the orders (`o`) and order_lines (`l`) tables, checked against the models at
# import (app/db/views.py). `_views` builds orders from rows of both tables' columns.
ORDER = View(
    OrderPublic,
    {
        "id": Column("o.id"),
        "status": Column("o.status"),
        "items": Nested(),
        "subtotal": Money("o.subtotal_cents"),
        "charges": Json("o.charges"),
        "total": Money("o.total_cents"),
        "external_id": Column("o.external_id"),
        "customer": Pair(("email", "o.customer_email"), ("name", "o.customer_name")),
        "metadata": Json("o.metadata_json"),
        "payment_status": Column("o.payment_status"),
        "payment_id": Column("o.payment_id"),
        "amount_paid": Money("o.amount_paid_cents"),
        "amount_refunded": Money("o.amount_refunded_cents"),
        "amount_refundable": Money(
            "o.amount_paid_cents - o.amount_refunded_cents", "amount_refundable_cents"
        ),
        "currency": ShopCurrency(),
        "created_at": Time("o.created_at"),
        "updated_at": Time("o.updated_at"),
        "cancel_reason": Column("o.cancel_reason"),
        "expires_at": Time("o.expires_at"),
    },
)
LINE = View(
    OrderLinePublic,
    {
        "product_id": Column("l.product_id"),
        "sku": Column("l.sku"),
        "name": Column("l.name"),
        "quantity": Column("l.quantity"),
        "unit_price": Money("l.unit_price_cents"),
        "line_total": Money("l.line_total_cents"),
        "quantity_shipped": Column("l.quantity_shipped"),
        "quantity_released": Column("l.quantity_released"),
        "quantity_returned": Column("l.quantity_returned"),
        "quantity_refunded": Column("l.quantity_refunded"),
    },
)
# The counts of a line's units a new order starts with: none shipped, released or refunded.
UNTOUCHED = {
    "quantity_shipped": 0,
    "quantity_released": 0,
    "quantity_returned": 0,
    "quantity_refunded": 0,
}
LINE_COLUMNS = LINE.select("sqlite")


def _order_columns(dialect: str) -> str:
    """An order's columns as `_views` reads them: its times already as the API's text."""
    return ORDER.select(dialect)


_AVAILABLE_OF_LIVE = Sql(
    "SELECT on_hand - committed FROM products WHERE id = :product_id AND archived_at IS NULL"
)
_ORDER_WITH_LINES = Sql.each(
    lambda dialect: (
        f"SELECT {_order_columns(dialect)}, {LINE_COLUMNS} FROM orders o "
        "JOIN order_lines l ON l.order_id = o.id WHERE o.id = :order_id ORDER BY l.id"
    )
)
_LOCKED = "SELECT id, status, total_cents, expires_at FROM orders WHERE id = :order_id"
_LOCK_ORDER = Sql(sqlite=_LOCKED, postgresql=_LOCKED + " FOR UPDATE")
_SET_STATUS = Sql(
    "UPDATE orders SET status = :status, cancel_reason = :cancel_reason, updated_at = :now "
    "WHERE id = :order_id"
)
# The payment window: claim a batch of due PENDING orders and cancel them, soonest deadline
# first. PostgreSQL skips orders another transaction holds (a payment, a cancel, another
# instance's sweeper) instead of queueing behind it; the status condition makes each expiry
# happen once whoever gets there first.
_DUE = (
    "SELECT id FROM orders WHERE status = 'PENDING' AND expires_at <= :now "
    "ORDER BY expires_at, id LIMIT :limit"
)
_EXPIRE = (
    "UPDATE orders SET status = 'CANCELED', cancel_reason = :cancel_reason, updated_at = :now "
    "WHERE status = 'PENDING' AND id IN ({due}) RETURNING id"
)
_EXPIRE_DUE = Sql(
    sqlite=_EXPIRE.format(due=_DUE),
    postgresql=_EXPIRE.format(due=_DUE + " FOR UPDATE SKIP LOCKED"),
)


def order_not_found(order_id: int) -> ApiError:
    return ApiError(
        "order_not_found",
        f"Order {order_id} does not exist.",
        order_id=order_id,
    )


def invalid_transition(
    current: OrderStatus,
    target: OrderStatus,
    *,
    detail: str | None = None,
    allowed: tuple[OrderStatus, ...] | None = None,
) -> ApiError:
    """409: an order in `current` cannot move to `target`; `allowed` (by default the moves
    TRANSITIONS allows) and `detail` say what it can do instead and why."""
    allowed = TRANSITIONS[current] if allowed is None else allowed
    # `from` is a keyword in Python, so the details go in as a dict.
    details: dict[str, Any] = {
        "from": current.value,
        "to": target.value,
        "allowed": [status.value for status in allowed],
    }
    return ApiError(
        "invalid_status_transition",
        detail or f"An order in {current.value} cannot move to {target.value}.",
        **details,
    )


def _views(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Orders as the API shows them (OrderPublic's JSON) from rows of order and line columns."""
    views: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    order_of, line_of = ORDER.of, LINE.of
    for row in rows:
        if current is None or current["id"] != row["id"]:
            current = order_of(row)
            views.append(current)
        current["items"].append(line_of(row))
    return views


def _as_id(text: str) -> int | None:
    """`text` as an order id, if it is one (digits, within the ids' range)."""
    if text.isascii() and text.isdigit() and 0 < len(text) <= 10 and int(text) <= MAX_ID:
        return int(text)
    return None


async def order_view(conn: Connection, order_id: int) -> dict[str, Any]:
    """The order as GET /orders/{id} shows it; 404 if there is none."""
    views = _views(await conn.fetch_all(_ORDER_WITH_LINES, {"order_id": order_id}))
    if not views:
        raise order_not_found(order_id)
    return views[0]


@one_statement_on_postgresql
async def place_order(
    conn: Connection, request: OrderCreate, *, payment_window: timedelta | None = None
) -> dict[str, Any]:
    """Reserve every line's stock and record the order, all or nothing, with a movement per
    line and its order.created event; it expires `payment_window` from now unless paid.
    Returns the order's view. How each engine does it: `_ON_ENGINE` below."""
    require_shop_currency(request.currency)
    now = utcnow()
    # The deadline at a whole second, as `expires_at` shows it: shown and enforced agree.
    expires_at = None if payment_window is None else (now + payment_window).replace(microsecond=0)
    fields = _stored_fields(request)
    try:
        view, total_cents = await _ON_ENGINE[conn.dialect].place(
            conn, request, fields, now, expires_at
        )
    except UniqueViolation:
        if request.external_id is None:
            raise
        # Another order with this external_id committed while this one was placed: nothing of
        # this one was written (PostgreSQL's one statement, or the seam's rollback); run again,
        # and the check before placing answers 409 with that order's id.
        raise RaceLost("an order with this external_id was placed concurrently") from None
    metrics.order_placed()
    business_event(log, "order_placed", order_id=view["id"], total_cents=total_cents)
    return view


def _stored_fields(request: OrderCreate) -> dict[str, Any]:
    """What an order stores of the request besides its lines, as its columns hold it (the
    charges as the API shows them, JSON text), with `charges_net`: what they add to the
    subtotal (a discount takes off)."""
    charges = [
        {
            "kind": charge.kind.value,
            "amount": money_text(to_cents(charge.amount)),
            "label": charge.label,
        }
        for charge in request.charges
    ]
    customer = request.customer
    return {
        "charges": outbox.dumps(charges),
        "charges_net": sum(
            -to_cents(charge.amount)
            if charge.kind == ChargeKind.DISCOUNT
            else to_cents(charge.amount)
            for charge in request.charges
        ),
        "external_id": request.external_id,
        "customer_email": None if customer is None else customer.email,
        "customer_name": None if customer is None else customer.name,
        "metadata_json": outbox.dumps(request.metadata),
    }


def _total(subtotal_cents: int, fields: dict[str, Any]) -> int:
    """The order's total: its subtotal and its charges; 422 below 0 (a discount too large)."""
    total = subtotal_cents + fields["charges_net"]
    if total < 0:
        raise ApiError(
            "validation_error",
            f"The charges take the total below 0: subtotal {money_text(subtotal_cents)}, "
            f"charges {money_text(fields['charges_net'])}.",
            errors=[
                {
                    "loc": ["body", "charges"],
                    "msg": "the total (subtotal + shipping + tax + fee - discount) is below 0",
                    "type": "value_error",
                    "input": None,
                }
            ],
        )
    return total


_BY_EXTERNAL_ID = Sql("SELECT id FROM orders WHERE external_id = :external_id")


async def _refuse_known_external_id(conn: Connection, external_id: str | None) -> None:
    """409 if an order with `external_id` exists, naming it."""
    if external_id is None:
        return
    existing = await conn.fetch_value(_BY_EXTERNAL_ID, {"external_id": external_id})
    if existing is not None:
        metrics.order_rejected("external_id_conflict")
        raise ApiError(
            "external_id_conflict",
            f"Order {existing} already has the external_id {external_id!r}.",
            order_id=existing,
            external_id=external_id,
        )


def _placed_view(
    order_id: int,
    subtotal_cents: int,
    total_cents: int,
    fields: dict[str, Any],
    lines: list[dict[str, Any]],
    now: datetime,
    expires: Any,
) -> dict[str, Any]:
    """A new order's view from what placing it returned (each line's product_id, sku, name,
    price_cents and quantity, in the request's order) and its stored fields, in the rows
    `_views` reads: no read back."""
    created = rfc3339(now)
    order = {
        "id": order_id,
        "status": OrderStatus.PENDING.value,
        **fields,
        "subtotal_cents": subtotal_cents,
        "total_cents": total_cents,
        "payment_status": PaymentStatus.UNPAID.value,
        "payment_id": None,
        "amount_paid_cents": 0,
        "amount_refunded_cents": 0,
        "amount_refundable_cents": 0,
        "created_at": created,
        "updated_at": created,
        "cancel_reason": None,
        "expires_at": None if expires is None else rfc3339(expires),
    }
    return _views(
        [
            {
                **order,
                "product_id": line["product_id"],
                "sku": line["sku"],
                "name": line["name"],
                "quantity": line["quantity"],
                "unit_price_cents": line["price_cents"],
                "line_total_cents": line["price_cents"] * line["quantity"],
                **UNTOUCHED,
            }
            for line in lines
        ]
    )[0]


async def _refuse(conn: Connection, product_id: int, quantity: int) -> None:
    """Explain why a line's stock could not be taken: unknown product, or not enough."""
    available = await conn.fetch_value(_AVAILABLE_OF_LIVE, {"product_id": product_id})
    if available is None:
        metrics.order_rejected("product_not_found")
        raise product_not_found(product_id)
    metrics.order_rejected("insufficient_stock")
    raise stock.insufficient_stock(product_id, requested=quantity, available=available)


async def locked_order(conn: Connection, order_id: int) -> dict[str, Any]:
    """The order's id, status and total_cents, its row held (PostgreSQL) until the transaction
    ends, so a racing status change waits and then sees this one's result."""
    row = await conn.fetch_one(_LOCK_ORDER, {"order_id": order_id})
    if row is None:
        raise order_not_found(order_id)
    return row


async def change_status(
    conn: Connection,
    order_id: int,
    target: OrderStatus,
    *,
    reason: CancelReason = CancelReason.REQUESTED,
    if_match: str | None = None,
) -> dict[str, Any]:
    """Move an order to `target` (PAID or CANCELED: a move to a shipped status is a shipment,
    app/shipments.py); moving to CANCELED (for `reason`) releases its unshipped units in the
    same transaction, exactly once (a racing cancel waits for the row and sees CANCELED).
    Setting the status it has is a no-op. `if_match` refuses the move unless the order is
    still as the client read it (compared once the row is held). Returns the order's view."""
    if target in SHIPPING:
        raise ValueError(f"a move to {target} is a shipment: app/shipments.py makes it")
    order = await locked_order(conn, order_id)
    if if_match is not None:
        etags.require_match(if_match, await order_view(conn, order_id), "order")
    current = OrderStatus(order["status"])
    if current == target:
        return await order_view(conn, order_id)
    if target not in TRANSITIONS[current]:
        raise invalid_transition(current, target)
    now = utcnow()
    if target == OrderStatus.PAID and _window_closed(order, now):
        raise window_closed(order)
    cancel_reason = CancelReason(reason).value if target == OrderStatus.CANCELED else None
    params = {"status": target.value, "cancel_reason": cancel_reason, "now": now}
    await conn.execute(_SET_STATUS, {**params, "order_id": order_id})
    if target == OrderStatus.CANCELED:
        await _return_stock(conn, order_id, SystemReason.ORDER_CANCELED, now)
    metrics.order_status_changed(target.value)
    business_event(log, f"order_{target.value.lower()}", order_id=order_id, previous=current.value)
    return await moved(conn, order_id, target)


async def moved(
    conn: Connection, order_id: int, target: OrderStatus, **made: Any
) -> dict[str, Any]:
    """The order's view right after its move to `target`, recorded as the move's event, with
    what the move `made` (a `shipment`): the one place each move is reported, whichever path
    (API, webhook, expiry, shipment) made it."""
    view = await order_view(conn, order_id)
    await outbox.record(conn, outbox.ORDER_EVENTS[target], {"order": view, **made})
    return view


def _window_closed(order: dict[str, Any], now: datetime) -> bool:
    return order["expires_at"] is not None and order["expires_at"] <= now


def window_closed(order: dict[str, Any]) -> ApiError:
    """A payment after the order's payment window: the order expires, it is never paid."""
    return invalid_transition(
        OrderStatus.PENDING,
        OrderStatus.PAID,
        allowed=(OrderStatus.CANCELED,),
        detail=f"Order {order['id']}'s payment window closed at "
        f"{rfc3339(order['expires_at'])}: it expires unpaid and cannot be paid any more.",
    )


async def _return_stock(
    conn: Connection, order_id: int, reason: SystemReason, now: datetime
) -> None:
    """Release every line's unshipped units of a canceled order (committed − q), with a
    movement for each line that had any."""
    await _ON_ENGINE[conn.dialect].return_stock(conn, order_id, reason, now)


async def expire_due(
    conn: Connection, *, now: datetime | None = None, limit: int = EXPIRY_BATCH
) -> int:
    """Cancel up to `limit` PENDING orders past their payment window, returning their stock
    (`order_expired` movements); returns how many expired. Each order expires once, however
    many workers and instances run this at the same time."""
    now = now or utcnow()
    params = {"now": now, "limit": limit, "cancel_reason": CancelReason.EXPIRED.value}
    expired = sorted(row["id"] for row in await conn.fetch_all(_EXPIRE_DUE, params))
    if not expired:
        return 0
    # Products in id order before any restock, as every other transaction takes them.
    await _ON_ENGINE[conn.dialect].lock_products_of(conn, expired)
    for order_id in expired:
        await _return_stock(conn, order_id, SystemReason.ORDER_EXPIRED, now)
        await moved(conn, order_id, OrderStatus.CANCELED)
        metrics.order_status_changed(OrderStatus.CANCELED.value)
    metrics.orders_expired(len(expired))
    business_event(log, "orders_expired", count=len(expired), order_ids=expired)
    return len(expired)


# GET /orders?sort=: each field's key (indexed with the id, app/tables.py); ties go by id in
# the same direction. Newest first unless asked otherwise.
SORTING = sorting.Sorting(
    CURSOR_KIND,
    "OrderSort",
    {
        "created_at": sorting.Key("o.created_at", sorting.KeyType.TIME),
        "total": sorting.Key("o.total_cents"),
        "updated_at": sorting.Key("o.updated_at", sorting.KeyType.TIME),
    },
    "o.id",
)
OrderSort = SORTING.values
DEFAULT_SORT = SORTING["-created_at"]


def _one_of_params(column: str, name: str, count: int) -> str:
    """`column = :name`, or `column IN (:name_0, ...)` for `count` values."""
    if count == 1:
        return f"{column} = :{name}"
    return f"{column} IN ({', '.join(f':{name}_{i}' for i in range(count))})"


def _values(name: str, values: tuple[str, ...]) -> dict[str, str]:
    """The parameters `_one_of_params(…, name, len(values))` names."""
    if len(values) == 1:
        return {name: values[0]}
    return {f"{name}_{i}": value for i, value in enumerate(values)}


def _distinct(values: Any) -> tuple[str, ...]:
    """A filter's values (one, or several), each once, as text, in a stable order."""
    if values is None:
        return ()
    if isinstance(values, str):
        values = (values,)
    return tuple(sorted({str(value) for value in values}))


@functools.cache
def _list_sql(
    status: int,
    product: bool,
    after: bool,
    since: bool,
    until: bool,
    sort: sorting.Sort,
    count: bool = False,
    *,
    external: bool = False,
    email: bool = False,
    payment: int = 0,
    q: bool = False,
) -> Sql:
    """`status` and `payment`: how many statuses and payment statuses the filter names."""
    conditions = []
    if status:
        conditions.append(_one_of_params("o.status", "status", status))
    if payment:
        conditions.append(_one_of_params("o.payment_status", "payment_status", payment))
    if external:
        conditions.append("o.external_id = :external_id")
    if email:
        conditions.append("o.customer_email = :customer_email")
    if q:
        # Each alternative is an index lookup: the id, the external_id, the e-mail.
        conditions.append("(o.id = :q_id OR o.external_id = :q OR o.customer_email = :q_email)")
    if product:
        conditions.append(
            "o.id IN (SELECT order_id FROM order_lines WHERE product_id = :product_id)"
        )
    if since:
        conditions.append("o.created_at >= :created_after")
    if until:
        conditions.append("o.created_at < :created_before")
    counted = "SELECT count(*) FROM orders o" + (
        f" WHERE {' AND '.join(conditions)}" if conditions else ""
    )
    if count:
        return Sql(counted)
    if after:
        conditions.append(sort.after())
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    paging = "LIMIT :limit" if after else "LIMIT :limit OFFSET :offset"
    # An offset page carries its count in every row (a subquery run once, as for products).
    total = "" if after else f"({counted}) AS total, "
    # One statement for the page and its lines: one round trip, one snapshot. The page's ids
    # (and sort keys) come from the sort's index first, skipping over it alone for a deep
    # offset; then each order and its lines are looked up by key. On PostgreSQL the lookups
    # are lateral and fenced (OFFSET 0), so the prepared statement's generic plan, which
    # guesses a tenth of the table for the page, cannot turn them into hash joins over every
    # order and every line (it did, from a few thousand orders on).
    order = sort.order_by()
    page = f"(SELECT o.id{sort.selected()} FROM orders o{where} ORDER BY {order} {paging}) page"
    joined = {
        "sqlite": "JOIN orders o ON o.id = page.id JOIN order_lines l ON l.order_id = o.id",
        "postgresql": (
            "CROSS JOIN LATERAL (SELECT * FROM orders WHERE id = page.id OFFSET 0) o "
            "CROSS JOIN LATERAL (SELECT * FROM order_lines WHERE order_id = page.id OFFSET 0) l"
        ),
    }
    key = "" if sort.key is None else ", page.sort_key"
    return Sql.each(
        lambda dialect: (
            f"SELECT {total}{_order_columns(dialect)}, {LINE_COLUMNS}{key} FROM {page} "
            f"{joined[dialect]} ORDER BY {order}, l.id"
        )
    )


async def list_orders(
    conn: Connection,
    *,
    limit: int,
    offset: int | None = None,
    after: str | None = None,
    status: OrderStatus | Iterable[OrderStatus] | None = None,
    product_id: int | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    external_id: str | None = None,
    customer_email: str | None = None,
    payment_status: PaymentStatus | Iterable[PaymentStatus] | None = None,
    q: str | None = None,
    sort: sorting.Sort = DEFAULT_SORT,
) -> dict[str, Any]:
    """One page in `sort`'s order (newest first by default): by offset (with the total) or
    after a cursor (no count). `status` and `payment_status` may name several (any of them
    matches); `customer_email` matches without case (addresses are stored lower-cased); `q` is
    an order id, an external_id or a customer e-mail, matched exactly."""
    statuses, payments = _distinct(status), _distinct(payment_status)
    params: dict[str, Any] = {
        "limit": limit + 1,
        "offset": offset or 0,
        **_values("status", statuses),
        **_values("payment_status", payments),
        "product_id": product_id,
        "created_after": created_after,
        "created_before": created_before,
        "external_id": external_id,
        "customer_email": None if customer_email is None else customer_email.lower(),
    }
    if q is not None:
        params.update(q=q, q_email=q.lower(), q_id=_as_id(q))
    # A cursor is bound to the filters it was issued under.
    filters = {
        "status": statuses,
        "payment_status": payments,
        "product_id": product_id,
        "created_after": created_after,
        "created_before": created_before,
        "external_id": params["external_id"],
        "customer_email": params["customer_email"],
        "q": q,
    }
    if after is not None:
        params.update(SORTING.after(sort, filters, after))
    shape = (
        len(statuses),
        product_id is not None,
        after is not None,
        created_after is not None,
        created_before is not None,
        sort,
    )
    more_shape = {
        "external": external_id is not None,
        "email": customer_email is not None,
        "payment": len(payments),
        "q": q is not None,
    }
    rows = await conn.fetch_all(_list_sql(*shape, **more_shape), params)
    total = None
    if after is None:
        total = (
            rows[0]["total"]
            if rows
            else await conn.fetch_value(_list_sql(*shape, count=True, **more_shape), params)
        )
    views = _views(rows)
    more, views = len(views) > limit, views[:limit]
    last = next(row for row in reversed(rows) if row["id"] == views[-1]["id"]) if more else None
    return {
        "items": views,
        "total": total,
        "limit": limit,
        "offset": None if after is not None else offset or 0,
        "next": SORTING.cursor(sort, filters, last) if last is not None else None,
    }


# ------------------------------------------------------------------ each engine's own statements
# The rules above are the same on both engines; where an engine does a step its own way, for
# speed, the step is a method of its class here, and `_ON_ENGINE` picks the class. Parity is
# guarded by the tests, which run every rule on both engines (tests/unit/test_orders.py).


class _OnSQLite:
    """SQLite: a statement per line, microseconds each on the event loop, in the writer's turn
    (which also holds every product: nothing to lock)."""

    TAKE_STOCK = Sql.only(
        "sqlite",
        "UPDATE products SET committed = committed + :quantity, updated_at = :now "
        "WHERE id = :product_id AND archived_at IS NULL AND on_hand - committed >= :quantity "
        "RETURNING sku, name, price_cents, on_hand, committed, low_stock_threshold",
    )
    INSERT_ORDER = Sql.only(
        "sqlite",
        "INSERT INTO orders (status, subtotal_cents, total_cents, charges, external_id, "
        "customer_email, customer_name, metadata_json, created_at, updated_at, expires_at) "
        "VALUES ('PENDING', :subtotal_cents, :total_cents, :charges, :external_id, "
        ":customer_email, :customer_name, :metadata_json, :now, :now, :expires_at) RETURNING id",
    )
    INSERT_LINE = Sql.only(
        "sqlite",
        "INSERT INTO order_lines "
        "(order_id, product_id, sku, name, quantity, unit_price_cents, line_total_cents) "
        "VALUES (:order_id, :product_id, :sku, :name, :quantity, :unit_price_cents, "
        ":line_total_cents)",
    )
    UNSHIPPED = Sql.only(
        "sqlite",
        "SELECT product_id, quantity - quantity_shipped - quantity_released AS units "
        "FROM order_lines WHERE order_id = :order_id "
        "AND quantity - quantity_shipped - quantity_released > 0 ORDER BY product_id",
    )
    RELEASE = Sql.only(
        "sqlite",
        "UPDATE products SET committed = committed - :units, updated_at = :now "
        "WHERE id = :product_id RETURNING on_hand, committed",
    )

    @classmethod
    async def place(
        cls,
        conn: Connection,
        request: OrderCreate,
        fields: dict[str, Any],
        now: datetime,
        expires_at: datetime | None,
    ) -> tuple[dict[str, Any], int]:
        # The writer's turn holds every order too: nothing can take the external_id between
        # this check and the insert.
        await _refuse_known_external_id(conn, request.external_id)
        taken: dict[int, dict[str, Any]] = {}
        for line in sorted(request.items, key=lambda line: line.product_id):
            params = {"product_id": line.product_id, "quantity": line.quantity, "now": now}
            row = await conn.fetch_one(cls.TAKE_STOCK, params)
            if row is None:
                await _refuse(conn, line.product_id, line.quantity)
            taken[line.product_id] = row  # type: ignore[assignment]
        quantities = {line.product_id: line.quantity for line in request.items}
        subtotal = sum(
            taken[line.product_id]["price_cents"] * line.quantity for line in request.items
        )
        total = _total(subtotal, fields)
        params = {**fields, "subtotal_cents": subtotal, "total_cents": total}
        order_id = int(
            await conn.fetch_value(
                cls.INSERT_ORDER, {**params, "now": now, "expires_at": expires_at}
            )
        )
        for product_id, product in taken.items():
            await ledger.record_movement(
                conn,
                product_id,
                SystemReason.ORDER_PLACED,
                committed_delta=quantities[product_id],
                after=product,
                order_id=order_id,
                now=now,
            )
        lines = []
        for line in request.items:
            product = taken[line.product_id]
            await conn.execute(
                cls.INSERT_LINE,
                {
                    "order_id": order_id,
                    "product_id": line.product_id,
                    "sku": product["sku"],
                    "name": product["name"],
                    "quantity": line.quantity,
                    "unit_price_cents": product["price_cents"],
                    "line_total_cents": product["price_cents"] * line.quantity,
                },
            )
            lines.append({**product, "product_id": line.product_id, "quantity": line.quantity})
        view = _placed_view(order_id, subtotal, total, fields, lines, now, expires_at)
        await outbox.record(conn, outbox.EventType.ORDER_CREATED, {"order": view})
        return view, total

    @classmethod
    async def return_stock(
        cls, conn: Connection, order_id: int, reason: SystemReason, now: datetime
    ) -> None:
        for line in await conn.fetch_all(cls.UNSHIPPED, {"order_id": order_id}):
            params = {"product_id": line["product_id"], "units": line["units"], "now": now}
            after = await conn.fetch_one(cls.RELEASE, params)
            assert after is not None
            await ledger.record_movement(
                conn,
                line["product_id"],
                reason,
                committed_delta=-line["units"],
                after=after,
                order_id=order_id,
                now=now,
            )

    @staticmethod
    async def lock_products_of(conn: Connection, order_ids: list[int]) -> None:
        """Nothing to do: the writer's turn holds every product already."""


# PostgreSQL's order.created event data, written by the database in the one statement that
# places the order: the order's and each line's JSON from the same fields as the view (checked
# against OrderPublic and OrderLinePublic at import, app/db/views.py).
_LINE_JSON = json_object(
    OrderLinePublic,
    {
        "product_id": "t.product_id",
        "sku": "t.sku",
        "name": "t.name",
        "quantity": "t.quantity",
        "unit_price": money_text_sql("t.price_cents", "postgresql"),
        "line_total": money_text_sql("t.price_cents * t.quantity", "postgresql"),
        **dict.fromkeys(UNTOUCHED, "0"),
    },
    "json_build_object",
)
_ORDER_JSON = json_object(
    OrderPublic,
    {
        "id": "placed.id",
        "status": f"'{OrderStatus.PENDING}'",
        "items": f"(SELECT json_agg({_LINE_JSON} ORDER BY t.position) FROM taken t)",
        "subtotal": money_text_sql("placed.subtotal_cents", "postgresql"),
        "charges": "CAST(CAST(:charges AS text) AS json)",
        "total": money_text_sql("placed.total_cents", "postgresql"),
        "external_id": "CAST(:external_id AS varchar)",
        "customer": "CAST(CAST(:customer AS text) AS json)",
        "metadata": "CAST(CAST(:metadata_json AS text) AS json)",
        "payment_status": f"'{PaymentStatus.UNPAID}'",
        "payment_id": "CAST(NULL AS text)",
        **dict.fromkeys(("amount_paid", "amount_refunded", "amount_refundable"), "'0.00'"),
        "currency": ShopCurrency().sql("postgresql"),
        "created_at": "CAST(:created_text AS text)",
        "updated_at": "CAST(:created_text AS text)",
        "cancel_reason": "CAST(NULL AS text)",
        "expires_at": "CAST(:expires_text AS text)",
    },
    "json_build_object",
)


class _OnPostgreSQL:
    """PostgreSQL: each step one statement, one round trip, rows locked in product id order."""

    # The whole order in one statement, its order.created event included, so that it needs no
    # transaction around it: one round trip instead of four (bench/README.md "Round trips on
    # PostgreSQL"). It locks the products in id order, and only if every line can be served
    # (`enough`, an InitPlan run before the first update) takes their stock and inserts the
    # order, its lines, their ledger movements and the event; otherwise it changes nothing. It
    # returns the lines taken, or each line's product and stock as locked, for the caller to
    # say which line was refused.
    # Stock events: run alone, it serves only orders whose lines cross no threshold (`crosses`),
    # the common case; for one that would cross, `place` raises NeedsTransaction and the seam
    # runs it again in a transaction, where ledger.report_crossings records the events
    # (bench/README.md "Stock events and the one-statement order").
    # Products are found by their key whatever the plan's guess of the lines: the prepared plan
    # is generic and guesses ten, and on a small catalog PostgreSQL then read every product
    # twice (a hash join in `locked` and in `taken`) rather than look ten up. The lateral lock
    # is one lookup per line by construction, in id order; the update's `= ANY` of the locked
    # ids is an index scan (tests/unit/test_orders.py reads the plan).
    # The new committed is computed from the locked row's, not the update's own read of it:
    # under READ COMMITTED the update reads the version in the statement's snapshot, and when an
    # order waited for a row another transaction changed, PostgreSQL checks the new row's
    # constraints against that older version before it moves to the latest one, so a quantity
    # that moved while the order waited (a cancel's release) made a constraint fail on the
    # stale one. The lock holds the latest version until the commit; deciding and taking on it
    # agree (tests/unit/test_order_race.py).
    PLACE_ORDER = Sql.only(
        "postgresql",
        f"""
WITH wanted AS (
    SELECT w.product_id, w.quantity, w.position
    FROM unnest(:product_ids::int[], :quantities::bigint[])
        WITH ORDINALITY AS w(product_id, quantity, position)
), locked AS (
    SELECT p.id, p.committed, p.price_cents, w.quantity,
        p.on_hand - p.committed >= w.quantity AS served,
        -- Stock events: whether this line's take crosses zero or the product's threshold
        -- (app/ledger.py `crossings`, kept in step by tests/api/test_stock_events.py).
        (p.on_hand - p.committed > 0 AND p.on_hand - p.committed - w.quantity <= 0)
        OR (p.on_hand - p.committed >= p.low_stock_threshold
            AND p.on_hand - p.committed - w.quantity < p.low_stock_threshold) AS crosses
    FROM (SELECT product_id, quantity FROM wanted ORDER BY product_id) w
    CROSS JOIN LATERAL (
        SELECT id, on_hand, committed, price_cents, low_stock_threshold FROM products
        WHERE id = w.product_id AND archived_at IS NULL FOR UPDATE
    ) p
), enough AS (
    -- Stock events: alone (no transaction) the statement serves only orders that cross no
    -- threshold; `place` reruns a crossing one in a transaction, which records the events.
    SELECT count(*) FILTER (WHERE served) = :line_count
        AND coalesce(sum(price_cents * quantity), 0) + CAST(:charges_net AS bigint) >= 0
        AND NOT EXISTS (SELECT FROM orders WHERE external_id = CAST(:external_id AS varchar))
        AND (CAST(:crossing_allowed AS boolean) OR NOT coalesce(bool_or(crosses), false))
        AS ok
    FROM locked
), taken AS (
    UPDATE products p SET committed = l.committed + w.quantity, updated_at = :now
    FROM wanted w JOIN locked l ON l.id = w.product_id
    WHERE (SELECT ok FROM enough) AND p.id = ANY(ARRAY(SELECT id FROM locked))
        AND w.product_id = p.id
    RETURNING p.id AS product_id, p.sku, p.name, p.price_cents, p.on_hand, p.committed,
        w.quantity, w.position
), placed AS (
    INSERT INTO orders (status, subtotal_cents, total_cents, charges, external_id,
        customer_email, customer_name, metadata_json, created_at, updated_at, expires_at)
    SELECT 'PENDING', sum(price_cents * quantity),
        sum(price_cents * quantity) + CAST(:charges_net AS bigint), CAST(:charges AS text),
        CAST(:external_id AS varchar), CAST(:customer_email AS varchar),
        CAST(:customer_name AS varchar), CAST(:metadata_json AS text), :now, :now,
        :expires_at::timestamptz
    FROM taken HAVING count(*) = :line_count
    RETURNING id, subtotal_cents, total_cents
), moved AS (
    INSERT INTO stock_movements (product_id, reason, on_hand_delta, committed_delta,
        on_hand_after, committed_after, order_id, created_at, actor)
    SELECT t.product_id, '{SystemReason.ORDER_PLACED}', 0, t.quantity, t.on_hand, t.committed,
        placed.id, :now, CAST(:actor AS varchar)
    FROM placed, taken t ORDER BY t.product_id
), lines AS (
    INSERT INTO order_lines
        (order_id, product_id, sku, name, quantity, unit_price_cents, line_total_cents)
    SELECT placed.id, t.product_id, t.sku, t.name, t.quantity, t.price_cents,
        t.price_cents * t.quantity
    FROM placed, taken t ORDER BY t.position
), {outbox.recording_ctes(f"json_build_object('order', {_ORDER_JSON})", "FROM placed")}
SELECT placed.id AS order_id, placed.subtotal_cents, placed.total_cents, t.product_id, t.sku,
    t.name, t.price_cents, t.quantity, t.position
FROM taken t LEFT JOIN placed ON true
UNION ALL
SELECT NULL, NULL, NULL, l.id, NULL, NULL, l.price_cents, l.quantity, NULL FROM locked l
WHERE l.served AND NOT (SELECT ok FROM enough)
ORDER BY position
""",
    )
    # Every line's unshipped units released and its movement in one statement, products
    # locked in id order first.
    RELEASE = Sql.only(
        "postgresql",
        "WITH unshipped AS (SELECT product_id, quantity - quantity_shipped - quantity_released "
        "AS units FROM order_lines WHERE order_id = :order_id "
        "AND quantity - quantity_shipped - quantity_released > 0), "
        "locked AS (SELECT p.id, p.committed, u.units FROM products p JOIN unshipped u "
        "ON u.product_id = p.id ORDER BY p.id FOR UPDATE OF p), "
        "released AS (UPDATE products SET committed = locked.committed - locked.units, "
        "updated_at = :now FROM locked WHERE locked.id = products.id "
        "RETURNING products.id, products.on_hand, products.committed, locked.units) "
        "INSERT INTO stock_movements (product_id, reason, on_hand_delta, committed_delta, "
        "on_hand_after, committed_after, order_id, created_at, actor) "
        "SELECT id, CAST(:reason AS varchar), 0, -units, on_hand, committed, :order_id, :now, "
        "CAST(:actor AS varchar) FROM released ORDER BY id "
        f"RETURNING {ledger.COLUMNS}",  # for their stock events (ledger.report_crossings)
    )
    # A placed order's movements, for the stock events of one placed in a transaction.
    MOVEMENTS = Sql.only(
        "postgresql",
        f"SELECT {ledger.COLUMNS} FROM stock_movements WHERE order_id = :order_id ORDER BY id",
    )
    # The products of a batch of orders, locked in id order before any is restocked (`= ANY`
    # of their ids: by key, where `IN (subquery)` let the generic plan read every product).
    LOCK_PRODUCTS_OF = Sql.only(
        "postgresql",
        "SELECT p.id FROM products p WHERE p.id = ANY(ARRAY(SELECT product_id "
        "FROM order_lines WHERE order_id = ANY(:order_ids::int[]))) ORDER BY p.id FOR UPDATE",
    )

    @classmethod
    async def place(
        cls,
        conn: Connection,
        request: OrderCreate,
        fields: dict[str, Any],
        now: datetime,
        expires_at: datetime | None,
    ) -> tuple[dict[str, Any], int]:
        customer = (
            None
            if fields["customer_email"] is None and fields["customer_name"] is None
            else {"email": fields["customer_email"], "name": fields["customer_name"]}
        )
        rows = await conn.fetch_all(
            cls.PLACE_ORDER,
            {
                **fields,
                "customer": outbox.dumps(customer),
                "product_ids": [line.product_id for line in request.items],
                "quantities": [line.quantity for line in request.items],
                "line_count": len(request.items),
                "crossing_allowed": conn.in_transaction,
                "now": now,
                "expires_at": expires_at,
                "created_text": rfc3339(now),
                "expires_text": None if expires_at is None else rfc3339(expires_at),
                SHOP_CURRENCY_PARAMETER: shop_currency(),
                **outbox.event_parameters(outbox.EventType.ORDER_CREATED),
            },
        )
        if rows and rows[0]["order_id"] is not None:
            first = rows[0]
            order_id, total = int(first["order_id"]), int(first["total_cents"])
            outbox.recorded()  # the statement recorded it
            if conn.in_transaction:  # it may have crossed a threshold: its stock events
                for movement in await conn.fetch_all(cls.MOVEMENTS, {"order_id": order_id}):
                    await ledger.report_crossings(conn, movement)
            view = _placed_view(
                order_id, int(first["subtotal_cents"]), total, fields, rows, now, expires_at
            )
            return view, total
        # Nothing was written. Why: the external_id is taken, a line could not be served, the
        # charges took the total below 0, or (alone, outside a transaction) a line crosses a
        # stock threshold.
        await _refuse_known_external_id(conn, request.external_id)
        served = {row["product_id"] for row in rows}
        if len(served) == len(request.items):
            _total(sum(row["price_cents"] * row["quantity"] for row in rows), fields)
            # Every line could be served, but one crosses a threshold: the statement alone
            # records no stock event, so the seam runs this again in a transaction.
            raise NeedsTransaction
        # The first line, in id order, that could not be served is the one the client hears of.
        refused = min(
            (line for line in request.items if line.product_id not in served),
            key=lambda line: line.product_id,
        )
        await _refuse(conn, refused.product_id, refused.quantity)
        raise AssertionError("unreachable")

    @classmethod
    async def return_stock(
        cls, conn: Connection, order_id: int, reason: SystemReason, now: datetime
    ) -> None:
        params = {"order_id": order_id, "reason": reason.value, "now": now}
        for movement in await conn.fetch_all(cls.RELEASE, {**params, "actor": current_actor()}):
            await ledger.report_crossings(conn, movement)

    @classmethod
    async def lock_products_of(cls, conn: Connection, order_ids: list[int]) -> None:
        await conn.execute(cls.LOCK_PRODUCTS_OF, {"order_ids": order_ids})


# Each engine's way with the steps above, by dialect.
_ON_ENGINE: dict[str, type[_OnSQLite] | type[_OnPostgreSQL]] = {
    "sqlite": _OnSQLite,
    "postgresql": _OnPostgreSQL,
}
