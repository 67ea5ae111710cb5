"""stock events: stock.low, stock.out and stock.replenished

Revision ID: 0017
Revises: 0016

`events.type`'s CHECK learns `stock.low`, `stock.out` and `stock.replenished` (the crossings of a
product's threshold and of zero available, app/ledger.py). As 0015 does, the types allowed are
read from the database and these added, so whichever order revisions that add types are applied
in, the list only widens; the downgrade leaves the wider CHECK (an earlier version never writes
the new types, and events of them stay readable). No table is rewritten.
"""

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db.check_constraints import replace_check

revision: str = "0017"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ADDED_TYPES = ("stock.low", "stock.out", "stock.replenished")
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
    current = _LISTED.findall(_current_definition())
    if not current:
        raise RuntimeError(f"events: no {CHECK} CHECK to widen")
    replace_check(op.get_bind(), "events", CHECK, _one_of(_widened(current)))


def downgrade() -> None:
    """The wider CHECK stays (see above)."""
