"""subscription management: secret rotation, the failing clock, `subscription.disabled`

Revision ID: 0013
Revises: 0012

Three nullable columns on `event_subscriptions`: `previous_secret` and
`previous_secret_expires_at` (the key a rotation replaced, which signs beside the new one until
then), and `failing_since` (when the unbroken run of failed attempts began; the service disables
a subscription failing for 3 days). Every subscription already there has none of them: it signs
with its one secret and its clock starts at its next failure. Nothing a client saw changes.

The events' CHECK gains `subscription.disabled`, widened in place on both engines
(app/db/check_constraints.py: `events` cannot be rebuilt on SQLite, the deliveries reference it).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import UTCDateTime

from app.db.check_constraints import replace_check

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The event types before and after this revision (a later type list needs a later revision).
BEFORE = (
    "order.created",
    "order.paid",
    "order.partially_shipped",
    "order.shipped",
    "order.canceled",
    "shipment.created",
    "stock.adjusted",
)
AFTER = (*BEFORE, "subscription.disabled")
CHECK = "ck_events_type_known"
COLUMNS = {
    "previous_secret": sa.String(128),
    "previous_secret_expires_at": UTCDateTime(),
    "failing_since": UTCDateTime(),
}


def _set_event_types(values: Sequence[str]) -> None:
    condition = f"type IN ({', '.join(repr(value) for value in values)})"
    replace_check(op.get_bind(), "events", CHECK, condition)


def upgrade() -> None:
    for name, type_ in COLUMNS.items():
        op.add_column("event_subscriptions", sa.Column(name, type_, nullable=True))
    _set_event_types(AFTER)


def downgrade() -> None:
    op.execute("DELETE FROM events WHERE type = 'subscription.disabled'")
    _set_event_types(BEFORE)
    # Not batch mode: on SQLite it would copy the table and drop the original, and the drop
    # would cascade to the deliveries. Both engines drop a column in place.
    for name in reversed(COLUMNS):
        op.execute(f"ALTER TABLE event_subscriptions DROP COLUMN {name}")
