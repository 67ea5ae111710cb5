"""subscription management: secret rotation, the failing clock, `subscription.disabled`

Revision ID: 0012
Revises: 0010

Three nullable columns on `event_subscriptions`: `previous_secret` and
`previous_secret_expires_at` (the key a rotation replaced, which signs beside the new one until
then), and `failing_since` (when the unbroken run of failed attempts began; the service disables
a subscription failing for 3 days). Every subscription already there has none of them: it signs
with its one secret and its clock starts at its next failure. Nothing a client saw changes.

The events' CHECK gains `subscription.disabled`. PostgreSQL drops and adds the constraint.
SQLite cannot alter a CHECK, and rebuilding `events` would cascade-delete the deliveries that
reference it (foreign keys are on) and could lower its AUTOINCREMENT sequence, so this revision
rewrites the constraint's text in the schema, the procedure SQLite's documentation gives for a
change that every stored row already satisfies ("ALTER TABLE", section 7): the list only grows.
"""

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import UTCDateTime

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The event types before and after this revision (a later type list needs a later revision).
BEFORE = ("order.created", "order.paid", "order.shipped", "order.canceled", "stock.adjusted")
AFTER = (*BEFORE, "subscription.disabled")
CHECK = "ck_events_type_known"
COLUMNS = {
    "previous_secret": sa.String(128),
    "previous_secret_expires_at": UTCDateTime(),
    "failing_since": UTCDateTime(),
}
# The constraint as it is written in SQLite's schema: its name, then the list of types.
_SQLITE_CHECK = re.compile(rf"(CONSTRAINT {CHECK} CHECK \(type IN \()[^)]*(\)\))")


def _one_of(values: Sequence[str]) -> str:
    return f"type IN ({', '.join(repr(value) for value in values)})"


def _set_event_types(values: Sequence[str]) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        op.drop_constraint(op.f(CHECK), "events", type_="check")
        op.create_check_constraint(op.f(CHECK), "events", _one_of(values))
        return
    schema = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'events'"
    ).scalar_one()
    listed = ", ".join(repr(value) for value in values)
    rewritten, found = _SQLITE_CHECK.subn(lambda m: f"{m[1]}{listed}{m[2]}", schema)
    if found != 1:
        raise RuntimeError(f"the events table's {CHECK} is not where it was expected: {schema}")
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    bind.exec_driver_sql(
        "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'events'", (rewritten,)
    )
    bind.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")


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
