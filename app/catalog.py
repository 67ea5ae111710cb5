"""The catalog as a whole: its version, its export, and its import (an upsert by SKU).

`catalog_version` is a hash of every live product's exported columns (and its raw
`updated_at`), in id order: it changes whenever anything an export shows changes, a product
is created or archived, and with nothing else; computed over the reader's snapshot, it needs
no bookkeeping on any other path (orders, stock). It costs a read of the catalog in keyset
batches (bench/README.md "Catalog import and export" says what that costs, and why not a
version column). The export reads it first, for its ETag, then the rows, in one snapshot.

An import is planned (every row read, checked and compared with the live product of its SKU)
and, unless a dry run, applied in one transaction through the single calls' own rules
(`products.create_product`, `products.update_product`), so each product created or changed
records its movements and events as those calls do, each product's row locked as they lock
it (in product-id order). With `If-Match`, on PostgreSQL the import also holds the catalog
against other writers from its version check to its commit (as SQLite's writer turn always
does), so the check and the writes are one atomic step; orders wait for it meanwhile
(bench/README.md "Catalog import and export" has the figures).
"""

import hashlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError

from app import products, stock
from app.catalog_formats import READ_ONLY_COLUMNS, Row, RowError, row_error
from app.core.errors import ApiError
from app.core.formats import money_text, to_cents
from app.db.base import Connection, Sql, timestamp_text
from app.schemas import CatalogImportRow, ProductCreate, ProductUpdate, StockCountCreate

BATCH = 1000
_COLUMNS = "id, sku, name, description, price_cents, on_hand, committed, low_stock_threshold"
_BATCH_SQL = Sql.each(
    lambda dialect: (
        f"SELECT {_COLUMNS}, updated_at AS changed_at, "
        f"{timestamp_text('updated_at', dialect)} AS updated_at FROM products "
        "WHERE archived_at IS NULL AND id > :after ORDER BY id LIMIT :limit"
    )
)
# What the version hashes of each product: whatever an import writes (and `updated_at`, to the
# microsecond). Not `committed`: it moves with every order placed, and a reviewed import would
# be refused (412) on any shop that takes orders while it is reviewed; shipments, receipts
# and counts move `on_hand`, which is hashed.
_VERSIONED = (*(c for c in _COLUMNS.split(", ") if c != "committed"), "changed_at")
# The live products of up to _SKU_SLOTS SKUs; a shorter list repeats its first SKU.
_SKU_SLOTS = 500
_BY_SKU = Sql(
    f"SELECT {_COLUMNS} FROM products WHERE archived_at IS NULL AND sku IN "
    f"({', '.join(f':s{n}' for n in range(_SKU_SLOTS))})"
)
# PostgreSQL, under If-Match: no other writer changes the catalog from the version check to
# the commit (row locks alone would let another product change between the two).
_HOLD_CATALOG = Sql.only("postgresql", "LOCK TABLE products IN SHARE ROW EXCLUSIVE MODE")


def quantities(row: dict[str, Any]) -> tuple[int, int, int]:
    """A product's (on_hand, committed, available) from its row: the one place that maps them."""
    return row["on_hand"], row["committed"], row["on_hand"] - row["committed"]


def exported(row: dict[str, Any]) -> dict[str, Any]:
    """A product as an export shows it (CatalogExportRecord)."""
    on_hand, committed, available = quantities(row)
    return {
        "id": row["id"],
        "sku": row["sku"],
        "name": row["name"],
        "description": row["description"],
        "price": money_text(row["price_cents"]),
        "on_hand": on_hand,
        "committed": committed,
        "available": available,
        "low_stock_threshold": row["low_stock_threshold"],
        "updated_at": row["updated_at"],
    }


async def batches(conn: Connection) -> AsyncIterator[list[dict[str, Any]]]:
    """Every live product, in id order, BATCH rows at a time (keyset: each batch an index
    range, whatever the catalog's size)."""
    after = 0
    while True:
        rows = await conn.fetch_all(_BATCH_SQL, {"after": after, "limit": BATCH})
        if not rows:
            return
        yield rows
        after = rows[-1]["id"]


async def catalog_version(conn: Connection) -> str:
    """32 hex digits that change whenever an exported column of a live product does, or a
    product is created or archived."""
    digest = hashlib.sha256()
    async for rows in batches(conn):
        for row in rows:
            digest.update(orjson.dumps([row[column] for column in _VERSIONED], default=str))
    return digest.hexdigest()[:32]


def version_matches(if_match: str | None, current: str) -> bool:
    """`If-Match` as a list of versions, quoted (an ETag) or not, or `*`."""
    if if_match is None:
        return True
    candidates = {tag.strip().removeprefix("W/").strip('"') for tag in if_match.split(",")}
    return "*" in candidates or current in candidates


# What applying an import would do: the products to create, those to change (by id, with
# their changed fields), how many rows change nothing, and every row's errors.
@dataclass
class Plan:
    creates: list[CatalogImportRow] = field(default_factory=list)
    updates: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)

    def report(self, version: str) -> dict[str, Any]:
        return {
            "created": len(self.creates),
            "updated": len(self.updates),
            "unchanged": self.unchanged,
            "errors": self.errors,
            "catalog_version": version,
        }


def _parsed(rows: list[Row], errors: list[RowError]) -> list[tuple[int, CatalogImportRow]]:
    """The rows that validate, each SKU once; the others' errors added to `errors`."""
    valid: list[tuple[int, CatalogImportRow]] = []
    first: dict[str, int] = {}
    for number, fields in rows:
        try:
            row = CatalogImportRow.model_validate(fields)
        except ValidationError as error:
            # The field alone (pydantic adds the member of a union that refused it), once.
            refused = {tuple(found["loc"][:1]): found["msg"] for found in error.errors()[::-1]}
            errors += [
                row_error(number, fields.get("sku"), loc, msg) for loc, msg in refused.items()
            ]
            continue
        if row.sku in first:
            errors.append(row_error(number, row.sku, ["sku"], f"SKU also on row {first[row.sku]}"))
            continue
        first[row.sku] = number
        valid.append((number, row))
    return valid


async def _live_by_sku(conn: Connection, skus: Sequence[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(skus), _SKU_SLOTS):
        chunk = list(skus[start : start + _SKU_SLOTS])
        padded = chunk + [chunk[0]] * (_SKU_SLOTS - len(chunk))
        params = {f"s{n}": sku for n, sku in enumerate(padded)}
        found.update((row["sku"], row) for row in await conn.fetch_all(_BY_SKU, params))
    return found


def _changes(current: dict[str, Any], row: CatalogImportRow) -> dict[str, Any]:
    """The fields `row` gives whose value differs from the product's."""
    changes: dict[str, Any] = {}
    for name in row.model_fields_set - set(READ_ONLY_COLUMNS):
        value = getattr(row, name)
        if name == "price":
            differs = to_cents(value) != current["price_cents"]
        elif name == "on_hand":
            differs = value != quantities(current)[0]
        else:
            differs = value != current[name]
        if differs:
            changes[name] = value
    return changes


async def plan_import(conn: Connection, rows: list[Row], unreadable: list[RowError]) -> Plan:
    """Check every row and compare it with the live product of its SKU; write nothing."""
    plan = Plan(errors=list(unreadable))
    valid = _parsed(rows, plan.errors)
    existing = await _live_by_sku(conn, [row.sku for _, row in valid])
    for number, row in valid:
        current = existing.get(row.sku)
        if current is None:
            missing = [name for name in ("name", "price") if getattr(row, name) is None]
            plan.errors += [
                row_error(number, row.sku, [n], "required for a new SKU") for n in missing
            ]
            if not missing:
                plan.creates.append(row)
        elif changes := _changes(current, row):
            plan.updates.append((current["id"], changes))
        else:
            plan.unchanged += 1
    plan.errors.sort(key=lambda error: error["row"])
    plan.updates.sort(key=lambda update: update[0])  # rows are taken in product-id order
    return plan


async def preview_import(
    conn: Connection, rows: list[Row], unreadable: list[RowError]
) -> dict[str, Any]:
    """A dry run: what applying would do, and the version it would apply to."""
    version = await catalog_version(conn)
    return (await plan_import(conn, rows, unreadable)).report(version)


def import_invalid(errors: list[RowError]) -> ApiError:
    rows = len({error["row"] for error in errors})
    return ApiError(
        "import_invalid",
        f"{rows} row(s) of the import are invalid; nothing was written.",
        errors=errors,
    )


async def apply_import(
    conn: Connection, rows: list[Row], unreadable: list[RowError], if_match: str | None = None
) -> dict[str, Any]:
    """All or nothing: every row applied, or (any row invalid) 422 and nothing written."""
    if if_match is not None and conn.dialect == "postgresql":
        await conn.execute(_HOLD_CATALOG)
    current = await catalog_version(conn)
    if not version_matches(if_match, current):
        raise ApiError(
            "precondition_failed",
            "If-Match does not match the catalog's current version: a product changed since.",
            etag=f'"{current}"',
            catalog_version=current,
        )
    plan = await plan_import(conn, rows, unreadable)
    if plan.errors:
        raise import_invalid(plan.errors)
    for product_id, changes in plan.updates:
        on_hand = changes.pop("on_hand", None)
        if changes:
            await products.update_product(conn, product_id, ProductUpdate(**changes))
        if on_hand is not None:
            await _apply_on_hand(conn, product_id, on_hand)
    for row in plan.creates:
        await products.create_product(conn, _new_product(row))
    return plan.report(await catalog_version(conn))


def _new_product(row: CatalogImportRow) -> ProductCreate:
    return ProductCreate(
        sku=row.sku,
        name=row.name,
        description=row.description,
        price=row.price,
        on_hand=row.on_hand or 0,  # the opening on_hand: an `initial` movement
        low_stock_threshold=row.low_stock_threshold,
    )


async def _apply_on_hand(conn: Connection, product_id: int, on_hand: int) -> None:
    """A row's `on_hand` for a known product, as a stock count taken now (a `counted`
    movement and its `stock.adjusted` event, as POST /products/{id}/stock-counts records)."""
    await stock.count(conn, product_id, StockCountCreate(on_hand=on_hand))
