"""Tables, and the request/response schemas of each resource, one family per resource."""

from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema
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

from app.types import (
    Amount,
    Description,
    MoneyOut,
    OrderId,
    Price,
    ProductId,
    ProductName,
    Quantity,
    Sku,
    StockLevel,
    Timestamp,
    from_cents,
)

# Predictable constraint names keep migrations readable and diffable.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

LIVE = text("archived_at IS NULL")


# The order lifecycle; transitions live in app.inventory.
class OrderStatus(StrEnum):
    PENDING = "PENDING"
    PAID = "PAID"
    SHIPPED = "SHIPPED"
    CANCELED = "CANCELED"


# ---------------------------------------------------------------- tables


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


# An order: its lines are a snapshot of the products as they were when it was placed.
class Order(SQLModel, table=True):
    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint(
            "status IN ('PENDING', 'PAID', 'SHIPPED', 'CANCELED')", name="status_known"
        ),
        CheckConstraint("total_cents >= 0", name="total_not_negative"),
    )

    id: int | None = TableField(default=None, sa_column=Column(Integer, primary_key=True))
    status: str = TableField(sa_column=Column(String(16), nullable=False, index=True))
    total_cents: int = TableField(sa_column=Column(BigInteger, nullable=False))
    created_at: datetime
    updated_at: datetime

    lines: list["OrderLine"] = Relationship(
        sa_relationship_kwargs={"lazy": "selectin", "order_by": "OrderLine.id"}
    )


# One line of an order, with the product's SKU, name and price copied at placing time.
class OrderLine(SQLModel, table=True):
    __tablename__ = "order_lines"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)

    id: int | None = TableField(default=None, sa_column=Column(Integer, primary_key=True))
    order_id: int = TableField(
        sa_column=Column(Integer, ForeignKey("orders.id"), nullable=False, index=True)
    )
    product_id: int = TableField(
        sa_column=Column(Integer, ForeignKey("products.id"), nullable=False, index=True)
    )
    sku: str = TableField(sa_column=Column(String(64), nullable=False))
    name: str = TableField(sa_column=Column(String(200), nullable=False))
    quantity: int = TableField(sa_column=Column(BigInteger, nullable=False))
    unit_price_cents: int = TableField(sa_column=Column(BigInteger, nullable=False))
    line_total_cents: int = TableField(sa_column=Column(BigInteger, nullable=False))


# An Idempotency-Key and the first response it produced, kept so that a retry replays it.
class IdempotencyKey(SQLModel, table=True):
    __tablename__ = "idempotency_keys"

    key: str = TableField(sa_column=Column(String(255), primary_key=True))
    # SHA-256 of the normalized request: the same key with another request is refused.
    request_fingerprint: str = TableField(sa_column=Column(String(64), nullable=False))
    status_code: int
    response_body: str = TableField(sa_column=Column(Text, nullable=False))
    order_id: int | None = TableField(
        default=None, sa_column=Column(Integer, ForeignKey("orders.id"))
    )
    created_at: datetime = TableField(index=True)


# ---------------------------------------------------------------- schemas


# Request bodies reject unknown fields, so a typo never passes silently.
class RequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")


# The body of POST /products.
class ProductCreate(RequestBody):
    sku: Sku
    name: ProductName
    description: Description | None = None
    price: Price
    stock: StockLevel = 0


# The body of PUT and PATCH /products/{id}: only the fields sent change. Only `description`
# may be set to null (cleared); the schema says so, as SkipJsonSchema keeps null out of the rest.
class ProductUpdate(RequestBody):
    sku: Sku | SkipJsonSchema[None] = None
    name: ProductName | SkipJsonSchema[None] = None
    description: Description | None = None
    price: Price | SkipJsonSchema[None] = None
    stock: StockLevel | SkipJsonSchema[None] = None

    @model_validator(mode="after")
    def required_fields_are_not_null(self) -> "ProductUpdate":
        for field in ("sku", "name", "price", "stock"):
            if field in self.model_fields_set and getattr(self, field) is None:
                raise ValueError(f"{field} may be changed but not set to null")
        return self


# A product as the API shows it.
class ProductPublic(BaseModel):
    id: int
    sku: str
    name: str
    description: str | None
    price: MoneyOut
    stock: int
    created_at: Timestamp
    updated_at: Timestamp

    @classmethod
    def of(cls, product: Product) -> "ProductPublic":
        return cls(
            id=product.id,
            sku=product.sku,
            name=product.name,
            description=product.description,
            price=from_cents(product.price_cents),
            stock=product.stock,
            created_at=product.created_at,
            updated_at=product.updated_at,
        )


# One requested line of a new order.
class OrderLineCreate(RequestBody):
    product_id: ProductId
    quantity: Quantity


# The body of POST /orders: a list of lines, or one line's fields as a shorthand.
class OrderCreate(RequestBody):
    # Lines are distinct (each product at most once, which JSON Schema cannot say in full).
    items: list[OrderLineCreate] = Field(
        min_length=1, max_length=50, json_schema_extra={"uniqueItems": True}
    )

    @model_validator(mode="before")
    @classmethod
    def expand_one_line_shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict) and "items" not in data and "product_id" in data:
            return {"items": [data]}
        return data

    @field_validator("items")
    @classmethod
    def each_product_once(cls, items: list[OrderLineCreate]) -> list[OrderLineCreate]:
        product_ids = [line.product_id for line in items]
        if len(set(product_ids)) != len(product_ids):
            raise ValueError("each product may appear on at most one line")
        return items


# The body of PUT and PATCH /orders/{id}.
class OrderStatusUpdate(RequestBody):
    status: OrderStatus


# One line of an order as the API shows it.
class OrderLinePublic(BaseModel):
    product_id: int
    sku: str
    name: str
    quantity: int
    unit_price: MoneyOut
    line_total: MoneyOut


# An order as the API shows it.
class OrderPublic(BaseModel):
    id: int
    status: OrderStatus
    items: list[OrderLinePublic]
    total: MoneyOut
    created_at: Timestamp
    updated_at: Timestamp

    @classmethod
    def of(cls, order: Order) -> "OrderPublic":
        return cls(
            id=order.id,
            status=OrderStatus(order.status),
            items=[
                OrderLinePublic(
                    product_id=line.product_id,
                    sku=line.sku,
                    name=line.name,
                    quantity=line.quantity,
                    unit_price=from_cents(line.unit_price_cents),
                    line_total=from_cents(line.line_total_cents),
                )
                for line in order.lines
            ],
            total=from_cents(order.total_cents),
            created_at=order.created_at,
            updated_at=order.updated_at,
        )


ItemT = TypeVar("ItemT")


# A page of a collection: the items, how many match in all, and the window asked for.
class Page(BaseModel, Generic[ItemT]):
    items: list[ItemT]
    total: int
    limit: int
    offset: int


# ---------------------------------------------------------------- payment events

PaymentEventType = Literal["payment.succeeded", "payment.failed"]


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


# The body of POST /webhooks/payment.
class PaymentEventCreate(RequestBody):
    type: PaymentEventType
    order_id: OrderId
    amount: Amount
    payment_id: str = Field(min_length=1, max_length=255)


# What the webhook answers: the event, whether it was a repeat, and the order's status now.
class PaymentEventReceipt(BaseModel):
    event_id: str
    duplicate: bool
    order_id: int
    order_status: OrderStatus
