"""actors: every stock movement and every event records who made the change

Revision ID: 0009
Revises: 0008

An `actor` column on `stock_movements` and on `events`: the API key's name, `webhook`, `system`
or `anonymous` (app/core/access.py). Rows written before this revision show `unknown` (the
column's default, which also fills them): nobody recorded who made them, and guessing `system`
or a key's name would be wrong for some. Nothing else a client sees changes: movements and
events gain the field, their other fields are as before. Adding a column with a constant
default rewrites no row on either engine (SQLite and PostgreSQL 11+ store the default once).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNKNOWN = "unknown"
TABLES = ("stock_movements", "events")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(
            table, sa.Column("actor", sa.String(32), nullable=False, server_default=UNKNOWN)
        )


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column("actor")
