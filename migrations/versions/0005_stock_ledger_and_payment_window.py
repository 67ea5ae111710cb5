"""stock ledger (stock_movements), orders.cancel_reason and orders.expires_at

Revision ID: 0005
Revises: 0004

An upgraded database satisfies the ledger's invariant from its first minute: every product
with stock gets one `initial` movement holding its stock at the upgrade, and every order
already canceled gets the reason it can only have had (`payment_failed` when a payment.failed
event canceled it, `requested` otherwise).
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The value list as it was at this revision (app/tables.py derives it from its enums;
# tests/unit/test_ledger_migration.py checks that the two agree).
MOVEMENT_REASONS = (
    "reason IN ('initial', 'order_placed', 'order_canceled', 'order_expired', 'stock_set', "
    "'received', 'returned', 'damaged', 'lost', 'correction')"
)
ORDER_REASONS = "reason IN ('order_placed', 'order_canceled', 'order_expired')"
PENDING = sa.text("status = 'PENDING'")


def upgrade() -> None:
    op.create_table(
        "stock_movements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("delta", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=True),
        sa.Column("reference", sa.String(length=128), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("stock_after", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.CheckConstraint("delta <> 0", name=op.f("ck_stock_movements_delta_not_zero")),
        sa.CheckConstraint(MOVEMENT_REASONS, name=op.f("ck_stock_movements_reason_known")),
        sa.CheckConstraint(
            "stock_after >= 0", name=op.f("ck_stock_movements_stock_after_not_negative")
        ),
        sa.CheckConstraint(
            f"({ORDER_REASONS}) = (order_id IS NOT NULL)",
            name=op.f("ck_stock_movements_order_id_iff_order_reason"),
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_stock_movements_order_id_orders")
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_stock_movements_product_id_products")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stock_movements")),
    )
    with op.batch_alter_table("stock_movements", schema=None) as batch_op:
        batch_op.create_index(
            "ix_stock_movements_product_id_id", ["product_id", "id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_stock_movements_order_id"), ["order_id"], unique=False)

    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cancel_reason", sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
    _backfill()
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index(
            "ix_orders_pending_expires_at",
            ["expires_at"],
            unique=False,
            sqlite_where=PENDING,
            postgresql_where=PENDING,
        )


def _backfill() -> None:
    # One statement each, whatever the size of the catalog. Archived products keep their
    # stock too, so they get their movement: the invariant holds for every row.
    now = sa.bindparam("now", datetime.now(UTC), type_=sqlmodel.sql.sqltypes.UTCDateTime())
    op.execute(
        sa.text(
            "INSERT INTO stock_movements (product_id, delta, reason, stock_after, created_at) "
            "SELECT id, stock, 'initial', stock, :now FROM products WHERE stock <> 0 ORDER BY id"
        ).bindparams(now)
    )
    op.execute(
        "UPDATE orders SET cancel_reason = CASE WHEN EXISTS (SELECT 1 FROM payment_events e "
        "WHERE e.order_id = orders.id AND e.type = 'payment.failed') "
        "THEN 'payment_failed' ELSE 'requested' END WHERE status = 'CANCELED'"
    )


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_orders_pending_expires_at", sqlite_where=PENDING, postgresql_where=PENDING
        )
    # Not in batch mode: that rebuilds the table on SQLite, which its foreign keys forbid here;
    # SQLite (3.35 and later) drops a column in place, as PostgreSQL does.
    op.drop_column("orders", "expires_at")
    op.drop_column("orders", "cancel_reason")
    with op.batch_alter_table("stock_movements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stock_movements_order_id"))
        batch_op.drop_index("ix_stock_movements_product_id_id")
    op.drop_table("stock_movements")
