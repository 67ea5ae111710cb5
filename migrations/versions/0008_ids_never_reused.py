"""ids never reused: event subscriptions and deliveries get AUTOINCREMENT ids on SQLite

Revision ID: 0008
Revises: 0007

SQLite gives a row without AUTOINCREMENT the largest id in its table plus one: once the newest
subscription was deleted, the next one took its id, and a client holding the old id read,
or deleted, someone else's subscription (deliveries, deleted with their subscription or their
event, likewise). With AUTOINCREMENT SQLite records the largest id ever handed out
(`sqlite_sequence`) and never goes below it. PostgreSQL's sequences never go back: nothing
changes there. Products and orders are never deleted (archived, canceled), so their largest
id always stays taken; events have had AUTOINCREMENT since 0006.

SQLite cannot add AUTOINCREMENT to a table: both tables are built again under new names, the
rows copied with their ids (so the sequence starts above every id still present), the old
tables dropped (deliveries first: with foreign keys on, dropping a subscriptions table that
deliveries still referenced would cascade-delete them), and the new ones renamed, which
rewrites the deliveries' reference to the subscriptions. The downgrade keeps AUTOINCREMENT:
an earlier version reads and writes these tables unchanged.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import UTCDateTime

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DELIVERY_STATUSES = ("pending", "delivered", "failed")
SUBSCRIPTION_COLUMNS = "id, url, types, description, enabled, secret, created_at"
DELIVERY_COLUMNS = (
    "id, event_seq, subscription_id, attempt, status, response_status, error, duration_ms, "
    "created_at, attempted_at, next_attempt_at, lease_token, lease_until"
)


def _one_of(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


def _create_subscriptions(name: str) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("types", sa.Text(), nullable=False),
        sa.Column("description", sa.String(500), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sqlite_autoincrement=True,
    )


def _create_deliveries(name: str, subscriptions: str) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("event_seq", sa.BigInteger(), nullable=False),
        sa.Column("subscription_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(500), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("attempted_at", UTCDateTime(), nullable=True),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("lease_token", sa.String(32), nullable=True),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            _one_of("status", DELIVERY_STATUSES), name="ck_event_deliveries_status_known"
        ),
        sa.ForeignKeyConstraint(
            ["event_seq"],
            ["events.seq"],
            name="fk_event_deliveries_event_seq_events",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            [f"{subscriptions}.id"],
            name="fk_event_deliveries_subscription_id_event_subscriptions",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("event_seq", "subscription_id", name="uq_event_deliveries_event_seq"),
        sqlite_autoincrement=True,
    )


def _create_delivery_indexes() -> None:
    op.create_index("ix_event_deliveries_subscription_id", "event_deliveries", ["subscription_id"])
    for name, column in (
        ("ix_event_deliveries_due", "next_attempt_at"),
        ("ix_event_deliveries_pending_since", "created_at"),
    ):
        op.create_index(
            name, "event_deliveries", [column], sqlite_where=sa.text("status = 'pending'")
        )


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    _create_subscriptions("event_subscriptions_new")
    op.execute(
        f"INSERT INTO event_subscriptions_new ({SUBSCRIPTION_COLUMNS})"
        f" SELECT {SUBSCRIPTION_COLUMNS} FROM event_subscriptions ORDER BY id"
    )
    _create_deliveries("event_deliveries_new", "event_subscriptions_new")
    op.execute(
        f"INSERT INTO event_deliveries_new ({DELIVERY_COLUMNS})"
        f" SELECT {DELIVERY_COLUMNS} FROM event_deliveries ORDER BY id"
    )
    op.drop_table("event_deliveries")
    op.drop_table("event_subscriptions")
    op.rename_table("event_subscriptions_new", "event_subscriptions")
    op.rename_table("event_deliveries_new", "event_deliveries")
    _create_delivery_indexes()


def downgrade() -> None:
    pass
