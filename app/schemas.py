"""The API's request and response schemas, one family per resource, and the list envelope."""

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from app.core.formats import (
    Amount,
    Description,
    MoneyOut,
    Note,
    OrderId,
    Price,
    ProductId,
    ProductName,
    Quantity,
    Reference,
    Sku,
    StockDelta,
    StockLevel,
    StorableText,
    Threshold,
    Timestamp,
)
from app.tables import AdjustmentReason, CancelReason, MovementReason, OrderStatus


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
    low_stock_threshold: Threshold | None = None


# The body of PUT and PATCH /products/{id}: only the fields sent change. Only `description`
# and `low_stock_threshold` may be set to null (cleared); the schema says so, as
# SkipJsonSchema keeps null out of the rest.
class ProductUpdate(RequestBody):
    sku: Sku | SkipJsonSchema[None] = None
    name: ProductName | SkipJsonSchema[None] = None
    description: Description | None = None
    price: Price | SkipJsonSchema[None] = None
    stock: StockLevel | SkipJsonSchema[None] = None
    low_stock_threshold: Threshold | None = None

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
    low_stock_threshold: int | None
    created_at: Timestamp
    updated_at: Timestamp


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
    # Why it was canceled; null unless CANCELED.
    cancel_reason: CancelReason | None
    # The end of its payment window (PENDING_ORDER_TTL_SECONDS); null when none was set.
    expires_at: Timestamp | None


ItemT = TypeVar("ItemT")


# A page of a collection (the contract's list envelope). Offset paging: `total` counts every
# match; cursor paging (`after`): `total` and `offset` are null. `next`: the cursor of the page
# after this one, or null on the last page.
class Page(BaseModel, Generic[ItemT]):
    items: list[ItemT]
    total: int | None
    limit: int
    offset: int | None
    next: str | None


PaymentEventType = Literal["payment.succeeded", "payment.failed"]


# The body of POST /webhooks/payment.
class PaymentEventCreate(RequestBody):
    type: PaymentEventType
    order_id: OrderId
    amount: Amount
    payment_id: StorableText = Field(min_length=1, max_length=255)


# What the webhook answers: the event, whether it was a repeat, and the order's status now.
class PaymentEventReceipt(BaseModel):
    event_id: str
    duplicate: bool
    order_id: int
    order_status: OrderStatus


# ---------------------------------------------------------------- stock ledger


# The body of POST /products/{id}/stock-adjustments: a relative change of stock and why.
class StockAdjustmentCreate(RequestBody):
    delta: StockDelta = Field(
        description="Units to add (received, returned) or, when negative, to take away; not 0."
    )
    reason: AdjustmentReason
    reference: Reference | None = None
    note: Note | None = None


# One change of a product's stock, as the API shows it.
class StockMovementPublic(BaseModel):
    id: int
    product_id: int
    delta: int
    reason: MovementReason
    order_id: int | None
    reference: str | None
    note: str | None
    stock_after: int
    actor: str = Field(
        description="Who made it: an API key's name, `webhook`, `system` (expiry), `anonymous` "
        "(no API_KEYS), or `unknown` (recorded before actors existed)."
    )
    created_at: Timestamp


# ---------------------------------------------------------------- catalog import and export


# One row of a catalog import (POST /products/import), CSV or NDJSON: only `sku` is required; a
# field left out changes nothing. `id`, `committed`, `available` and `updated_at`, which an
# export adds, are accepted and ignored, so an export imports again as it is.
class CatalogImportRow(RequestBody):
    sku: Sku
    name: ProductName | SkipJsonSchema[None] = None
    description: Description | None = None
    price: Price | SkipJsonSchema[None] = None
    on_hand: StockLevel | SkipJsonSchema[None] = None
    low_stock_threshold: Threshold | None = None
    id: SkipJsonSchema[Any] = None
    committed: SkipJsonSchema[Any] = None
    available: SkipJsonSchema[Any] = None
    updated_at: SkipJsonSchema[Any] = None

    @model_validator(mode="after")
    def required_fields_are_not_null(self) -> "CatalogImportRow":
        for field in ("name", "price", "on_hand"):
            if field in self.model_fields_set and getattr(self, field) is None:
                raise ValueError(f"{field} may be changed but not set to null")
        return self


# What is wrong with one row of an import: its row (the line a spreadsheet or editor shows),
# its SKU when it had a readable one, the field (`loc`, empty for the whole row) and why.
class CatalogImportError(BaseModel):
    row: int
    sku: str | None
    loc: list[str | int]
    msg: str


# What an import did (or, as a dry run, would do), and the catalog's version after it.
class CatalogImportReport(BaseModel):
    created: int
    updated: int
    unchanged: int
    errors: list[CatalogImportError]
    catalog_version: str


# One product as an export shows it, one line of NDJSON or CSV.
class CatalogExportRecord(BaseModel):
    id: int
    sku: str
    name: str
    description: str | None
    price: MoneyOut
    on_hand: int
    committed: int
    available: int
    low_stock_threshold: int | None
    updated_at: Timestamp
