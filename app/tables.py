"""The tables Alembic migrates: what is stored, and the one list of order statuses."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlmodel import Field as TableField
from sqlmodel import Relationship, SQLModel

# Predictable constraint names keep migrations readable and diffable.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

LIVE = text("archived_at IS NULL")


# The order lifecycle; transitions live in app.orders.
class OrderStatus(StrEnum):
    PENDING = "PENDING"
    PAID = "PAID"
    SHIPPED = "SHIPPED"
    CANCELED = "CANCELED"


# A product in the catalog; archived products keep their row for past orders' sake.
class Product(SQLModel, table=True):
    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint("price_cents > 0", name="price_positive"),
        CheckConstraint("stock >= 0", name="stock_not_negative"),
        # SKUs are unique among live products only, so archiving frees a SKU.
        Index("uq_products_live_sku", "sku", unique=True, sqlite_where=LIVE, postgresql_where=LIVE),
    )

    id: int | None = TableField(default=None, sa_column=Column(Integer, primary_key=True))
    sku: str = TableField(sa_column=Column(String(64), nullable=False))
    name: str = TableField(sa_column=Column(String(200), nullable=False))
    description: str | None = TableField(default=None, sa_column=Column(String(2000)))
    price_cents: int = TableField(sa_column=Column(BigInteger, nullable=False))
    stock: int = TableField(sa_column=Column(BigInteger, nullable=False))
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None = None


# The CHECK constraint that keeps `orders.status` to the statuses above.
STATUS_KNOWN = "status IN (" + ", ".join(f"'{status.value}'" for status in OrderStatus) + ")"


# An order: its lines are a snapshot of the products as they were when it was placed.
class Order(SQLModel, table=True):
    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint(STATUS_KNOWN, name="status_known"),
        CheckConstraint("total_cents >= 0", name="total_not_negative"),
        # Lists are newest first (id descending): by status, a page is a range of this index.
        Index("ix_orders_status_id", "status", "id"),
        Index("ix_orders_created_at", "created_at"),
    )

    id: int | None = TableField(default=None, sa_column=Column(Integer, primary_key=True))
    status: str = TableField(sa_column=Column(String(16), nullable=False))
    total_cents: int = TableField(sa_column=Column(BigInteger, nullable=False))
    created_at: datetime
    updated_at: datetime

    lines: list["OrderLine"] = Relationship(
        sa_relationship_kwargs={"lazy": "selectin", "order_by": "OrderLine.id"}
    )


# One line of an order, with the product's SKU, name and price copied at placing time.
class OrderLine(SQLModel, table=True):
    __tablename__ = "order_lines"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        # GET /orders?product_id=: the product's orders, newest first, from the index alone.
        Index("ix_order_lines_product_id_order_id", "product_id", "order_id"),
    )

    id: int | None = TableField(default=None, sa_column=Column(Integer, primary_key=True))
    order_id: int = TableField(
        sa_column=Column(Integer, ForeignKey("orders.id"), nullable=False, index=True)
    )
    product_id: int = TableField(
        sa_column=Column(Integer, ForeignKey("products.id"), nullable=False)
    )
    sku: str = TableField(sa_column=Column(String(64), nullable=False))
    name: str = TableField(sa_column=Column(String(200), nullable=False))
    quantity: int = TableField(sa_column=Column(BigInteger, nullable=False))
    unit_price_cents: int = TableField(sa_column=Column(BigInteger, nullable=False))
    line_total_cents: int = TableField(sa_column=Column(BigInteger, nullable=False))


# An Idempotency-Key and the first response it produced, kept so that a retry replays it. A key
# lives in the key space of one operation ("orders", ...) and belongs to one API key (its
# principal; "" when the API is open): the same key from two clients is two keys.
class IdempotencyKey(SQLModel, table=True):
    __tablename__ = "idempotency_keys"

    space: str = TableField(sa_column=Column(String(32), primary_key=True))
    principal: str = TableField(sa_column=Column(String(64), primary_key=True))
    key: str = TableField(sa_column=Column(String(255), primary_key=True))
    # SHA-256 of the normalized request: the same key with another request is refused.
    request_fingerprint: str = TableField(sa_column=Column(String(64), nullable=False))
    status_code: int
    response_body: str = TableField(sa_column=Column(Text, nullable=False))
    order_id: int | None = TableField(
        default=None, sa_column=Column(Integer, ForeignKey("orders.id"))
    )
    created_at: datetime = TableField(index=True)


# A payment event applied to an order, recorded in the same transaction as its effect; the
# unique event id is what makes a redelivery a no-op. The raw body is kept for audit.
class PaymentEvent(SQLModel, table=True):
    __tablename__ = "payment_events"

    id: int | None = TableField(default=None, sa_column=Column(Integer, primary_key=True))
    event_id: str = TableField(sa_column=Column(String(128), nullable=False, unique=True))
    order_id: int = TableField(
        sa_column=Column(Integer, ForeignKey("orders.id"), nullable=False, index=True)
    )
    type: str = TableField(sa_column=Column(String(32), nullable=False))
    payment_id: str = TableField(sa_column=Column(String(255), nullable=False))
    amount_cents: int = TableField(sa_column=Column(BigInteger, nullable=False))
    raw_body: str = TableField(sa_column=Column(Text, nullable=False))
    signed_at: datetime
    processed_at: datetime
