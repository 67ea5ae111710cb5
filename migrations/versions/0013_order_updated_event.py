"""order.updated events: a change of an order's metadata is reported

Revision ID: 0013
Revises: 0012

The events table's CHECK on `type` gains `order.updated` (every type it held at 0012, and the
new one). Downgrading removes the `order.updated` events (and their deliveries), which the
narrower constraint cannot hold.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db.check_constraints import replace_check

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The types at 0012 (migration 0011's EVENT_TYPES), written out: a migration never changes.
EVENT_TYPES_BEFORE = (
    "type IN ('order.created', 'order.paid', 'order.partially_shipped', 'order.shipped', "
    "'order.canceled', 'shipment.created', 'stock.adjusted')"
)
EVENT_TYPES = (
    "type IN ('order.created', 'order.paid', 'order.partially_shipped', 'order.shipped', "
    "'order.canceled', 'order.updated', 'shipment.created', 'stock.adjusted')"
)


def upgrade() -> None:
    replace_check(op.get_bind(), "events", "ck_events_type_known", EVENT_TYPES)


def downgrade() -> None:
    bind = op.get_bind()
    updated = "SELECT seq FROM events WHERE type = 'order.updated'"
    bind.execute(sa.text(f"DELETE FROM event_deliveries WHERE event_seq IN ({updated})"))
    bind.execute(sa.text("DELETE FROM events WHERE type = 'order.updated'"))
    replace_check(bind, "events", "ck_events_type_known", EVENT_TYPES_BEFORE)
