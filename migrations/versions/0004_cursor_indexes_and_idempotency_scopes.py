"""cursor list indexes; idempotency keys scoped by key space and API key

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 20:40:00

Lists page by id (newest first for orders): `orders (status, id)` serves a status filter and
`order_lines (product_id, order_id)` a product filter from the index alone, so a cursor page
costs the same at any size of the table. Idempotency keys get a key space (the operation) and
a principal (the API key): existing keys are POST /orders keys of the open API.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_orders_status"))
        batch_op.create_index("ix_orders_status_id", ["status", "id"], unique=False)
        batch_op.create_index("ix_orders_created_at", ["created_at"], unique=False)

    with op.batch_alter_table("order_lines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_order_lines_product_id"))
        batch_op.create_index(
            "ix_order_lines_product_id_order_id", ["product_id", "order_id"], unique=False
        )

    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("space", sa.String(length=32), nullable=False, server_default="orders")
        )
        batch_op.add_column(
            sa.Column("principal", sa.String(length=64), nullable=False, server_default="")
        )
        batch_op.drop_constraint("pk_idempotency_keys", type_="primary")
        batch_op.create_primary_key("pk_idempotency_keys", ["space", "principal", "key"])


def downgrade() -> None:
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_constraint("pk_idempotency_keys", type_="primary")
        batch_op.drop_column("principal")
        batch_op.drop_column("space")
        batch_op.create_primary_key("pk_idempotency_keys", ["key"])

    with op.batch_alter_table("order_lines", schema=None) as batch_op:
        batch_op.drop_index("ix_order_lines_product_id_order_id")
        batch_op.create_index(batch_op.f("ix_order_lines_product_id"), ["product_id"], unique=False)

    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_created_at")
        batch_op.drop_index("ix_orders_status_id")
        batch_op.create_index(batch_op.f("ix_orders_status"), ["status"], unique=False)
