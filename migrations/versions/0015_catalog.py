"""catalog: a low-stock threshold per product, and the product events

Revision ID: 0015
Revises: 0014

`products.low_stock_threshold`: null (no threshold, every product there) or a count; nothing a
client saw changes, products gain the field, null. Adding a nullable column rewrites no row on
either engine.

`events.type`'s CHECK learns `product.created`, `product.updated` and `product.archived`. The
types it allows are read from the database and these added, so this revision widens whatever
list an earlier revision left (whichever order revisions that add types are applied in);
`replace_check` (app/db/check_constraints.py) widens it on both engines without rebuilding
`events`, which its deliveries reference. The downgrade leaves the wider CHECK: an earlier
version never writes the new types, and events of them stay readable.
"""

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db.check_constraints import replace_check

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
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


def _current_definition() -> str:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        found = bind.scalar(
            sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'events'")
        )
        check = re.search(rf"CONSTRAINT {CHECK} CHECK \((type IN \([^)]*\))\)", found or "")
        return check.group(1) if check else ""
    return str(
        bind.scalar(
            sa.text(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conname = :name AND conrelid = 'events'::regclass"
            ),
            {"name": CHECK},
        )
        or ""
    )


def upgrade() -> None:
    op.add_column("products", sa.Column("low_stock_threshold", sa.BigInteger(), nullable=True))
    current = _LISTED.findall(_current_definition())
    if not current:
        raise RuntimeError(f"events: no {CHECK} CHECK to widen")
    replace_check(op.get_bind(), "events", CHECK, _one_of(_widened(current)))


def downgrade() -> None:
    # SQLite 3.35+ drops a column in place (a rebuild of `products` would trip the foreign
    # keys of order lines and movements).
    op.drop_column("products", "low_stock_threshold")
