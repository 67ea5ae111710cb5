"""subscription management: secret rotation and the failing clock

Revision ID: 0014
Revises: 0013

Three nullable columns on `event_subscriptions`: `previous_secret` and
`previous_secret_expires_at` (the key a rotation replaced, which signs beside the new one until
then), and `failing_since` (when the unbroken run of failed attempts began; the service disables
a subscription failing for 3 days). Every subscription already there has none of them: it signs
with its one secret and its clock starts at its next failure. Nothing a client saw changes.
The events' CHECK already takes `subscription.disabled` (0011).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import UTCDateTime

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = {
    "previous_secret": sa.String(128),
    "previous_secret_expires_at": UTCDateTime(),
    "failing_since": UTCDateTime(),
}


def upgrade() -> None:
    for name, type_ in COLUMNS.items():
        op.add_column("event_subscriptions", sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    # Not batch mode: on SQLite it would copy the table and drop the original, and the drop
    # would cascade to the deliveries. Both engines drop a column in place.
    for name in reversed(COLUMNS):
        op.execute(f"ALTER TABLE event_subscriptions DROP COLUMN {name}")
