"""The product catalog's rules: SKUs unique among live products, conditional updates, archiving.

Rules take a `Connection` inside a transaction the caller's `Database.read/write` opened, and
return products as the API shows them (`product_view`), so a router serializes them once; on
SQLite a list's items come as the JSON text the database made of each (`orjson.Fragment`).
"""

import functools
from typing import Any

import orjson

from app import ledger
from app.core import etags, sorting
from app.core.currencies import shop_currency
from app.core.errors import ApiError
from app.core.formats import to_cents, utcnow
from app.db.base import Connection, Sql, UniqueViolation
from app.db.views import SHOP_CURRENCY_PARAMETER
from app.events import outbox
from app.product_view import PRODUCT, product_view
from app.product_view import VIEW_FIELDS as VIEW_FIELDS  # the catalog reads it here
from app.product_view import columns as _columns
from app.schemas import ProductCreate, ProductUpdate
from app.tables import AVAILABLE, EventType, SystemReason

# SQLite runs in this process, in C: JSON it writes costs less than a row dict, a view dict and
# orjson per product, and a list's items reach the response as they are (orjson.Fragment;
# bench/README.md "SQLite lists as JSON"). PostgreSQL's server would spend more on it than the
# worker saves, and it is the one part that does not scale out: there a list's rows come as
# columns.
_VIEW_JSON = PRODUCT.json_object("sqlite")


CURSOR_KIND = "products"

_CREATE = Sql.each(
    lambda dialect: (
        "INSERT INTO products (sku, name, description, price_cents, on_hand, committed, "
        "low_stock_threshold, created_at, updated_at) VALUES (:sku, :name, :description, "
        ":price_cents, :on_hand, 0, :low_stock_threshold, :now, :now) "
        # The live-SKU index refuses a taken SKU; DO NOTHING makes that an answer, not an error.
        f"ON CONFLICT (sku) WHERE archived_at IS NULL DO NOTHING RETURNING {_columns(dialect)}"
    )
)
_LIVE_PRODUCT = Sql.each(
    lambda dialect: (
        f"SELECT {_columns(dialect)} FROM products WHERE id = :product_id AND archived_at IS NULL"
    )
)
_LOCK_LIVE_PRODUCT = Sql(
    sqlite=_LIVE_PRODUCT.text("sqlite"),
    postgresql=_LIVE_PRODUCT.text("postgresql") + " FOR UPDATE",
)
_ARCHIVE = Sql.each(
    lambda dialect: (
        "UPDATE products SET archived_at = :now WHERE id = :product_id AND archived_at IS NULL "
        f"RETURNING {_columns(dialect)}"
    )
)
# What a product.updated event reports: a change of any field but the quantities (and the
# times, which follow the others).
_DESCRIBING = ("sku", "name", "description", "price_cents", "low_stock_threshold")


def product_not_found(product_id: int) -> ApiError:
    return ApiError(
        "product_not_found",
        f"Product {product_id} does not exist.",
        product_id=product_id,
    )


def _sku_conflict(sku: str | None) -> ApiError:
    return ApiError(
        "sku_conflict",
        f"SKU {sku!r} is already used by another product.",
        sku=sku,
    )


def _written_item(row: dict[str, Any]) -> orjson.Fragment:
    return orjson.Fragment(row["item"])


# Per engine: what a list selects of each product, and how such a row becomes its item.
_LISTED: dict[str, tuple[str, Any]] = {
    "sqlite": (f"id, {_VIEW_JSON} AS item", _written_item),
    "postgresql": (_columns("postgresql"), product_view),
}


async def create_product(conn: Connection, data: ProductCreate) -> dict[str, Any]:
    """A new product; its opening units, if any, are its first movement (`initial`)."""
    now = utcnow()
    row = await conn.fetch_one(
        _CREATE,
        {
            "sku": data.sku,
            "name": data.name,
            "description": data.description,
            "price_cents": to_cents(data.price),
            "on_hand": data.opening_units,
            "low_stock_threshold": data.low_stock_threshold,
            "now": now,
        },
    )
    if row is None:
        raise _sku_conflict(data.sku)
    if row["on_hand"] != 0:
        await ledger.record_movement(
            conn,
            row["id"],
            SystemReason.INITIAL,
            on_hand_delta=row["on_hand"],
            after=row,
            now=now,
        )
    view = product_view(row)
    await outbox.record(conn, EventType.PRODUCT_CREATED, {"product": view})
    return view


async def get_product(conn: Connection, product_id: int) -> dict[str, Any]:
    row = await conn.fetch_one(_LIVE_PRODUCT, {"product_id": product_id})
    if row is None:
        raise product_not_found(product_id)
    return product_view(row)


# `q` is matched case-insensitively in every script, both sides lowered by the engine, against
# the name or the SKU. On PostgreSQL, lower() (a UTF-8 database's ctype folds every letter). On
# SQLite, whose lower() and LIKE fold ASCII letters only: a name of ASCII alone (as many
# characters as bytes) is left to LIKE, any other is lowered by Python's str.lower
# (app/db/sqlite.py registers it); a SKU is ASCII by its pattern, so LIKE alone folds it. Cheaper
# than SQLite's own lower() on every row was (bench/README.md, "Name search").
_FOLDED = {
    "sqlite": "((CASE WHEN length(name) = length(CAST(name AS BLOB)) THEN name"
    " ELSE unicode_lower(name) END) LIKE unicode_lower(:pattern) ESCAPE '/'"
    " OR sku LIKE :pattern ESCAPE '/')",
    "postgresql": "(lower(name) LIKE lower(:pattern) ESCAPE '/'"
    " OR lower(sku) LIKE lower(:pattern) ESCAPE '/')",
}
_NAME_MATCHES = "<name matches>"  # stands for the engine's _FOLDED while a statement is built

# GET /products?sort=: each field's key; ties go by id in the same direction. Each key has a
# partial index on (key, id) over live products (app/tables.py), which a page after a cursor
# walks from the cursor, and a deep offset page skips over without reading a product.
# `available` is app/tables.py's AVAILABLE (on_hand - committed), the one place its SQL is
# written.
SORTING = sorting.Sorting(
    CURSOR_KIND,
    "ProductSort",
    {
        "id": None,
        "name": sorting.Key("name", sorting.KeyType.TEXT),
        "price": sorting.Key("price_cents"),
        "available": sorting.Key(AVAILABLE),
        "updated_at": sorting.Key("updated_at", sorting.KeyType.TIME),
    },
    "id",
)
ProductSort = SORTING.values
DEFAULT_SORT = SORTING["id"]


@functools.cache
def _list_sql(
    sku: bool,
    q: bool,
    in_stock: bool | None,
    low_stock: bool | None,
    sort: sorting.Sort,
    page: str,
) -> Sql:
    """The list statement for one combination of filters and sort, built once, for a `page`
    that is `first` (offset 0), `deep` (offset > 0), `after` (a cursor) or `count`.

    An offset page carries its count in every row (`total`, a subquery run once): one round
    trip on PostgreSQL where it was two; only a page with no rows (past the end) needs the
    count on its own. With no filter the count is the one the database keeps
    (`catalog_counts`): a row's read, where counting costs O(products). On PostgreSQL a deep
    page finds its ids first, skipping over the sort's index alone, then reads only those
    products: skipped rows are never read or built. SQLite already skips a row without building
    it (nor reading more than the index for it), and the plain OFFSET is the cheaper there
    (bench/README.md "Offset pages and sorting")."""
    conditions = ["archived_at IS NULL"]
    if sku:
        conditions.append("sku = :sku")
    if q:
        conditions.append(_NAME_MATCHES)
    if in_stock is not None:
        conditions.append(f"{AVAILABLE} > 0" if in_stock else f"{AVAILABLE} <= 0")
    if low_stock is not None:
        below = f"{AVAILABLE} < low_stock_threshold"  # false or null without a threshold
        conditions.append(below if low_stock else f"NOT coalesce({below}, false)")
    counted = (
        f"SELECT count(*) FROM products WHERE {' AND '.join(conditions)}"
        if len(conditions) > 1
        else "SELECT live_products FROM catalog_counts"
    )
    if page == "count":
        return Sql.each(lambda dialect: counted.replace(_NAME_MATCHES, _FOLDED[dialect]))
    if page == "after":
        conditions.append(sort.after())
    where, order = " AND ".join(conditions), sort.order_by()
    total = "" if page == "after" else f"({counted}) AS total, "
    ids = f"SELECT id FROM products WHERE {where} ORDER BY {order} LIMIT :limit OFFSET :offset"

    def build(dialect: str) -> str:
        found, paging = where, "LIMIT :limit OFFSET :offset" if page == "deep" else "LIMIT :limit"
        if page == "deep" and dialect == "postgresql":
            # `= ANY(ARRAY(...))` runs the ids' scan once and looks each product up by its key;
            # `IN (subquery)` can let a prepared statement's generic plan hash-join them.
            found, paging = f"id = ANY(ARRAY({ids}))", "LIMIT :limit"
        return (
            f"SELECT {total}{_LISTED[dialect][0]}{sort.selected()} FROM products "
            f"WHERE {found} ORDER BY {order} {paging}"
        ).replace(_NAME_MATCHES, _FOLDED[dialect])

    return Sql.each(build)


def _like_pattern(q: str) -> str:
    escaped = q.replace("/", "//").replace("%", "/%").replace("_", "/_")
    return f"%{escaped}%"


def list_filters(
    *,
    sku: str | None = None,
    q: str | None = None,
    in_stock: bool | None = None,
    low_stock: bool | None = None,
) -> dict[str, Any]:
    """The filters a list's cursor is bound to (with its sort)."""
    return {"sku": sku, "q": q, "in_stock": in_stock, "low_stock": low_stock}


_BELOW_THRESHOLD = Sql(
    f"SELECT count(*) FROM products WHERE archived_at IS NULL AND {AVAILABLE} < low_stock_threshold"
)


async def count_below_threshold(conn: Connection) -> int:
    """Live products whose `available` is below their `low_stock_threshold` (the /metrics
    gauge, read from the database at each scrape so every worker answers the same)."""
    return int(await conn.fetch_value(_BELOW_THRESHOLD))


async def list_products(
    conn: Connection,
    *,
    limit: int,
    offset: int | None = None,
    after: str | None = None,
    sku: str | None = None,
    q: str | None = None,
    in_stock: bool | None = None,
    low_stock: bool | None = None,
    sort: sorting.Sort = DEFAULT_SORT,
) -> dict[str, Any]:
    """One page in `sort`'s order: by offset (with the total) or after a cursor (no count)."""
    params: dict[str, Any] = {"limit": limit + 1, "offset": offset or 0, "sku": sku}
    params[SHOP_CURRENCY_PARAMETER] = shop_currency()
    if q:
        params["pattern"] = _like_pattern(q)
    filters = list_filters(sku=sku, q=q, in_stock=in_stock, low_stock=low_stock)
    if after is not None:
        params.update(SORTING.after(sort, filters, after))
    shape = (sku is not None, bool(q), in_stock, low_stock, sort)
    page = "after" if after is not None else "deep" if offset else "first"
    rows = await conn.fetch_all(_list_sql(*shape, page), params)
    total = None
    if after is None:
        total = (
            rows[0]["total"] if rows else await conn.fetch_value(_list_sql(*shape, "count"), params)
        )
    more, rows = len(rows) > limit, rows[:limit]
    return {
        "items": list(map(_LISTED[conn.dialect][1], rows)),
        "total": total,
        "limit": limit,
        "offset": None if after is not None else offset or 0,
        "next": SORTING.cursor(sort, filters, rows[-1]) if more else None,
    }


@functools.cache
def _update_sql(fields: tuple[str, ...]) -> Sql:
    assignments = ", ".join(f"{field} = :{field}" for field in (*fields, "updated_at"))
    return Sql.each(
        lambda dialect: (
            f"UPDATE products SET {assignments} WHERE id = :product_id "
            f"RETURNING {_columns(dialect)}"
        )
    )


async def update_product(
    conn: Connection, product_id: int, changes: ProductUpdate, if_match: str | None = None
) -> dict[str, Any]:
    """Only the fields sent change; `if_match` refuses the change if the product moved on. A
    change of `on_hand` (or of `stock`, which sets available: on_hand = stock + committed) is
    an absolute set, recorded as a `stock_set` movement of new − old; of any other field, a
    `product.updated` event. Fields sent with the value they hold change nothing: a change
    that changes nothing writes and records nothing."""
    fields = changes.model_dump(exclude_unset=True)
    if "price" in fields:
        fields["price_cents"] = to_cents(fields.pop("price"))
    row = await conn.fetch_one(_LOCK_LIVE_PRODUCT, {"product_id": product_id})
    if row is None:
        raise product_not_found(product_id)
    if "stock" in fields:
        # The row is held since it was read: its committed units cannot change meanwhile.
        fields["on_hand"] = fields.pop("stock") + row["committed"]
    view = product_view(row)
    etags.require_match(if_match, view, "product")
    fields = {name: value for name, value in fields.items() if row[name] != value}
    if not fields:
        return view
    statement = _update_sql(tuple(sorted(fields)))
    now = utcnow()
    try:
        updated = await conn.fetch_one(
            statement, {**fields, "updated_at": now, "product_id": product_id}
        )
    except UniqueViolation:
        raise _sku_conflict(fields.get("sku")) from None
    assert updated is not None
    view = product_view(updated)
    if any(name in fields for name in _DESCRIBING):
        await outbox.record(conn, EventType.PRODUCT_UPDATED, {"product": view})
    # The row is held since it was read (PostgreSQL; SQLite holds the writer turn), so the
    # on_hand read then is the on_hand this set replaces.
    if updated["on_hand"] != row["on_hand"]:
        movement = await ledger.record_movement(
            conn,
            product_id,
            SystemReason.STOCK_SET,
            on_hand_delta=updated["on_hand"] - row["on_hand"],
            after=updated,
            now=now,
        )
        await ledger.report_adjusted(conn, view, movement)
    return view


async def archive_product(conn: Connection, product_id: int, if_match: str | None = None) -> None:
    """Archive, not erase: past orders keep their snapshot, and the SKU is free again. The
    `product.archived` event shows the product as the last GET did; `if_match` refuses the
    archive if the product changed since the client read it."""
    if if_match is not None:
        held = await conn.fetch_one(_LOCK_LIVE_PRODUCT, {"product_id": product_id})
        if held is None:
            raise product_not_found(product_id)
        etags.require_match(if_match, product_view(held), "product")
    row = await conn.fetch_one(_ARCHIVE, {"product_id": product_id, "now": utcnow()})
    if row is None:
        raise product_not_found(product_id)
    await outbox.record(conn, EventType.PRODUCT_ARCHIVED, {"product": product_view(row)})
