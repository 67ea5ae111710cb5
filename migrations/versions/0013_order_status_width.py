"""order status width: `orders.status` takes every status (PARTIALLY_SHIPPED is 17 characters)

Revision ID: 0013
Revises: 0012

The column was VARCHAR(16), from when the longest status was CANCELED; PostgreSQL refused a
partly shipped order's status (22001, a 500 for every partial shipment), SQLite, which does not
enforce lengths, took it. Widened to 32 in place on both engines (app/db/check_constraints.py:
no table rebuild on SQLite, where orders is referenced). No value changes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db.check_constraints import set_varchar_length

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    set_varchar_length(op.get_bind(), "orders", "status", 32)


def downgrade() -> None:
    bind = op.get_bind()
    longer = bind.execute(
        sa.text("SELECT count(*) FROM orders WHERE length(status) > 16")
    ).scalar_one()
    if longer:
        raise RuntimeError(
            "This database has partly shipped orders, whose status does not fit VARCHAR(16); "
            "restore the backup taken before the upgrade instead."
        )
    set_varchar_length(bind, "orders", "status", 16)
