"""catalog: a low-stock threshold per product, and the product events

Revision ID: 0015
Revises: 0010

`products.low_stock_threshold`: null (no threshold, every product there) or a count; nothing a
client saw changes, products gain the field, null. Adding a nullable column rewrites no row on
either engine.

`events.type`'s CHECK learns `product.created`, `product.updated` and `product.archived`. The
types it allows are read from the database and these added, so this revision widens whatever
list an earlier revision left (whichever order revisions that add types are applied in).
PostgreSQL drops and adds the constraint. SQLite cannot alter a CHECK, and rebuilding `events`
would cascade-delete its deliveries (their foreign key, foreign keys on): SQLite documents a
procedure for a change that leaves every stored row valid (lang_altertable.html, "Making Other
Kinds Of Table Schema Changes"): the table's SQL in `sqlite_master` is rewritten under
`writable_schema` and the schema version bumped, in the migration's transaction. A CHECK that
allows more values than before is such a change. The downgrade leaves the wider CHECK: an
earlier version never writes the new types, and events of them stay readable.
"""

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ADDED_TYPES = ("product.created", "product.updated", "product.archived")
CHECK = "ck_events_type_known"
# `type IN ('order.created', ...)` as either engine writes it back.
_LISTED = re.compile(r"'([a-z_.]+)'")


def _one_of(values: Sequence[str]) -> str:
    return f"type IN ({', '.join(repr(value) for value in values)})"


def _widened(current: Sequence[str]) -> list[str]:
    return [*current, *(value for value in ADDED_TYPES if value not in current)]


def _widen_postgresql() -> None:
    definition = op.get_bind().scalar(
        sa.text(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conname = :name AND conrelid = 'events'::regclass"
        ),
        {"name": CHECK},
    )
    types = _widened(_LISTED.findall(definition or ""))
    op.execute(f"ALTER TABLE events DROP CONSTRAINT {CHECK}")
    op.execute(f"ALTER TABLE events ADD CONSTRAINT {CHECK} CHECK ({_one_of(types)})")


def _widen_sqlite() -> None:
    bind = op.get_bind()
    table_sql = bind.scalar(
        sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'events'")
    )
    check = re.search(rf"CONSTRAINT {CHECK} CHECK \((type IN \([^)]*\))\)", table_sql)
    if check is None:
        raise RuntimeError(f"events: no {CHECK} CHECK to widen in {table_sql!r}")
    types = _widened(_LISTED.findall(check.group(1)))
    new_sql = table_sql[: check.start(1)] + _one_of(types) + table_sql[check.end(1) :]
    version = bind.scalar(sa.text("PRAGMA schema_version"))
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    bind.execute(
        sa.text("UPDATE sqlite_master SET sql = :sql WHERE type = 'table' AND name = 'events'"),
        {"sql": new_sql},
    )
    bind.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")


def upgrade() -> None:
    op.add_column("products", sa.Column("low_stock_threshold", sa.BigInteger(), nullable=True))
    if op.get_bind().dialect.name == "sqlite":
        _widen_sqlite()
    else:
        _widen_postgresql()


def downgrade() -> None:
    # SQLite 3.35+ drops a column in place (a rebuild of `products` would trip the foreign
    # keys of order lines and movements).
    op.drop_column("products", "low_stock_threshold")
