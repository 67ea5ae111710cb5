"""event trace context: the W3C `traceparent` an event was recorded under

Revision ID: 0010
Revises: 0008

Deliveries run later, outside the request that recorded the event: to send them on in the
request's trace (docs/operations.md "Traces"), the outbox keeps the trace context current when
the event was recorded. Nullable: events recorded with tracing off, and every event already
there, have none, and their deliveries carry no `traceparent`. A version-00 `traceparent` is
55 characters (`00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("events", sa.Column("traceparent", sa.String(55), nullable=True))


def downgrade() -> None:
    op.drop_column("events", "traceparent")
