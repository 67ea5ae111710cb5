"""order money: charges and subtotal, the storefront's ids, and where the payment stands

Revision ID: 0012
Revises: 0011

An order gains what a storefront computed (`charges`: shipping, tax, fees, discounts, with the
`subtotal` of its lines; the total already charged is kept), its own `external_id` (unique),
the customer's e-mail (indexed) and name, `metadata`, and its payment: `payment_status`,
`payment_id`, `amount_paid` and `amount_refunded`.

Orders placed before had no charges: their subtotal is their total, which is what they showed.
An order a `payment.succeeded` event paid (its row in `payment_events`) shows that payment:
status `paid`, the payment id and amount the event carried; every other order is `unpaid`.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PAYMENT_STATUSES = "payment_status IN ('unpaid', 'paid', 'partially_refunded', 'refunded')"
# Added as the columns' own constraints, which SQLite takes with ADD COLUMN.
COLUMNS = (
    "subtotal_cents BIGINT NOT NULL DEFAULT 0",
    "charges TEXT NOT NULL DEFAULT '[]'",
    "external_id VARCHAR(128)",
    "customer_email VARCHAR(254)",
    "customer_name VARCHAR(200)",
    "metadata_json TEXT NOT NULL DEFAULT '{}'",
    "payment_status VARCHAR(24) NOT NULL DEFAULT 'unpaid' "
    f"CONSTRAINT ck_orders_payment_status_known CHECK ({PAYMENT_STATUSES})",
    "payment_id VARCHAR(255)",
    "amount_paid_cents BIGINT NOT NULL DEFAULT 0 "
    "CONSTRAINT ck_orders_amount_paid_not_negative CHECK (amount_paid_cents >= 0)",
    "amount_refunded_cents BIGINT NOT NULL DEFAULT 0 CONSTRAINT ck_orders_refunds_within_paid "
    "CHECK (amount_refunded_cents >= 0 AND amount_refunded_cents <= amount_paid_cents)",
)
NAMES = [column.split()[0] for column in COLUMNS]


def upgrade() -> None:
    for column in COLUMNS:
        op.execute(f"ALTER TABLE orders ADD COLUMN {column}")
    op.create_index("uq_orders_external_id", "orders", ["external_id"], unique=True)
    op.create_index("ix_orders_customer_email", "orders", ["customer_email"])
    op.execute("UPDATE orders SET subtotal_cents = total_cents")
    op.execute(
        "UPDATE orders SET payment_status = 'paid', "
        "payment_id = (SELECT e.payment_id FROM payment_events e WHERE e.order_id = orders.id "
        "AND e.type = 'payment.succeeded' ORDER BY e.id LIMIT 1), "
        "amount_paid_cents = (SELECT e.amount_cents FROM payment_events e "
        "WHERE e.order_id = orders.id AND e.type = 'payment.succeeded' ORDER BY e.id LIMIT 1) "
        "WHERE id IN (SELECT order_id FROM payment_events WHERE type = 'payment.succeeded')"
    )


def downgrade() -> None:
    op.drop_index("ix_orders_customer_email", "orders")
    op.drop_index("uq_orders_external_id", "orders")
    # amount_refunded's constraint names amount_paid: SQLite drops it with its own column only.
    for name in reversed(NAMES):
        op.execute(f"ALTER TABLE orders DROP COLUMN {name}")
