"""payment providers: a payment event's id is unique per provider, not across all of them

Revision ID: 0013
Revises: 0012

POST /webhooks/stripe records Stripe's events (`evt_...` ids) in `payment_events` beside those
of POST /webhooks/payment (ids the sender chose, `X-Event-Id`). A `provider` column says which
door each came through (`payment` or `stripe`, app/tables.py `PaymentProvider`), and the unique
key becomes (provider, event_id): an id one sender chose can never be taken for a repeat of the
other's. Every event already recorded came through /webhooks/payment and is `payment` (the
column's default fills them); a repeat of one is still a duplicate, so nothing a client saw
changes. SQLite rebuilds the table to swap the constraint (Alembic's batch mode).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PROVIDERS = ("payment", "stripe")


def upgrade() -> None:
    with op.batch_alter_table("payment_events") as batch_op:
        batch_op.add_column(
            sa.Column("provider", sa.String(16), nullable=False, server_default="payment")
        )
        batch_op.drop_constraint(op.f("uq_payment_events_event_id"), type_="unique")
        batch_op.create_unique_constraint(
            op.f("uq_payment_events_provider_event_id"), ["provider", "event_id"]
        )
        batch_op.create_check_constraint(
            op.f("ck_payment_events_provider_known"),
            "provider IN (" + ", ".join(f"'{p}'" for p in PROVIDERS) + ")",
        )


def downgrade() -> None:
    # Only possible while no two providers share an event id.
    with op.batch_alter_table("payment_events") as batch_op:
        batch_op.drop_constraint(op.f("ck_payment_events_provider_known"), type_="check")
        batch_op.drop_constraint(op.f("uq_payment_events_provider_event_id"), type_="unique")
        batch_op.create_unique_constraint(op.f("uq_payment_events_event_id"), ["event_id"])
        batch_op.drop_column("provider")
