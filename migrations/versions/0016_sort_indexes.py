"""sort indexes: an index on (key, id) for each sort of GET /products and GET /orders

Revision ID: 0016
Revises: 0015

Lists sort by a key with ties broken by id in the same direction, and page after a cursor by
keyset on (key, id): each sort needs an index on exactly that, read forwards or backwards.
Products' are partial, over live products, as every product list reads only those (`id` has
its primary key). Orders' default sort is newest first by `created_at`: `(created_at, id)`
replaces `(created_at)`, and with a status filter `(status, created_at, id)` replaces
`(status, id)`, whose id order no list uses any more.
Indexes only: nothing a client sees changes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = sa.text("archived_at IS NULL")
# As app/tables.py's PRODUCT_SORT_INDEXES at this revision (`available` is an expression).
PRODUCT_SORT_INDEXES = {
    "name": ("name", "id"),
    "price": ("price_cents", "id"),
    "available": (sa.text("(on_hand - committed)"), "id"),
    "updated_at": ("updated_at", "id"),
}
ORDER_INDEXES = {
    "ix_orders_created_at_id": ("created_at", "id"),
    "ix_orders_status_created_at_id": ("status", "created_at", "id"),
    "ix_orders_total_cents_id": ("total_cents", "id"),
    "ix_orders_updated_at_id": ("updated_at", "id"),
}


def upgrade() -> None:
    for name, columns in PRODUCT_SORT_INDEXES.items():
        op.create_index(
            f"ix_products_live_{name}_id",
            "products",
            list(columns),
            sqlite_where=LIVE,
            postgresql_where=LIVE,
        )
    for name, columns in ORDER_INDEXES.items():
        op.create_index(name, "orders", list(columns))
    op.drop_index("ix_orders_created_at", table_name="orders")
    op.drop_index("ix_orders_status_id", table_name="orders")


def downgrade() -> None:
    op.create_index("ix_orders_status_id", "orders", ["status", "id"])
    op.create_index("ix_orders_created_at", "orders", ["created_at"])
    for name in ORDER_INDEXES:
        op.drop_index(name, table_name="orders")
    for name in PRODUCT_SORT_INDEXES:
        op.drop_index(f"ix_products_live_{name}_id", table_name="products")
