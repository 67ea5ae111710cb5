"""The API's request and response schemas, one family per resource, and the list envelope."""

from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from app.core.formats import (
    METADATA_KEYS,
    Amount,
    Carrier,
    ChargeAmount,
    ChargeLabel,
    CurrencyCode,
    CustomerName,
    Description,
    Email,
    ExternalId,
    MetadataKey,
    MetadataValue,
    MoneyOut,
    Note,
    OrderId,
    Price,
    ProductId,
    ProductName,
    ProviderRefundId,
    Quantity,
    Reference,
    RefundAmount,
    Rfc3339,
    Sku,
    StockDelta,
    StockLevel,
    StorableText,
    Threshold,
    Timestamp,
    TrackingNumber,
    TrackingUrl,
)
from app.tables import (
    AdjustmentReason,
    CancelReason,
    ChargeKind,
    MovementReason,
    OrderStatus,
    PaymentStatus,
    RefundReason,
    RefundSource,
    Restock,
)


# Request bodies reject unknown fields, so a typo never passes silently.
class RequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _one_quantity(body: BaseModel) -> None:
    """`stock` (available) and `on_hand` are two ways to say one thing: never both at once."""
    if {"stock", "on_hand"} <= body.model_fields_set:
        raise ValueError("send `stock` or `on_hand`, not both")


# The body of POST /products: its opening units as `on_hand`, or as `stock` (earlier clients).
class ProductCreate(RequestBody):
    sku: Sku
    name: ProductName
    description: Description | None = None
    price: Price
    # Neither has a default in the schema: a generated client then sends only the one it is
    # given (both at once is 422). Neither sent: no units.
    stock: StockLevel | SkipJsonSchema[None] = None
    on_hand: StockLevel | SkipJsonSchema[None] = None
    low_stock_threshold: Threshold | None = None

    @model_validator(mode="after")
    def one_quantity(self) -> "ProductCreate":
        for field in ("stock", "on_hand"):
            if field in self.model_fields_set and getattr(self, field) is None:
                raise ValueError(f"{field} may be left out but not set to null")
        _one_quantity(self)
        return self

    @property
    def opening_units(self) -> int:
        return self.on_hand if self.on_hand is not None else self.stock or 0


# The body of PUT and PATCH /products/{id}: only the fields sent change. Only `description`
# and `low_stock_threshold` may be set to null (cleared); the schema says so, as
# SkipJsonSchema keeps null out of the rest.
class ProductUpdate(RequestBody):
    sku: Sku | SkipJsonSchema[None] = None
    name: ProductName | SkipJsonSchema[None] = None
    description: Description | None = None
    price: Price | SkipJsonSchema[None] = None
    # `stock` sets `available` (on_hand becomes stock + committed); `on_hand` sets on_hand.
    stock: StockLevel | SkipJsonSchema[None] = None
    on_hand: StockLevel | SkipJsonSchema[None] = None
    low_stock_threshold: Threshold | None = None

    @model_validator(mode="after")
    def required_fields_are_not_null(self) -> "ProductUpdate":
        for field in ("sku", "name", "price", "stock", "on_hand"):
            if field in self.model_fields_set and getattr(self, field) is None:
                raise ValueError(f"{field} may be changed but not set to null")
        _one_quantity(self)
        return self


# A product as the API shows it.
class ProductPublic(BaseModel):
    id: int
    sku: str
    name: str
    description: str | None
    price: MoneyOut
    # The shop's currency (CURRENCY), ISO 4217: the currency of `price`.
    currency: str
    on_hand: int = Field(description="Units the shop holds.")
    committed: int = Field(description="Units promised to orders not yet shipped.")
    available: int = Field(description="on_hand − committed: what new orders may take.")
    stock: int = Field(description="The same number as `available`, for earlier clients.")
    low_stock_threshold: int | None
    created_at: Timestamp
    updated_at: Timestamp


# One requested line of a new order.
class OrderLineCreate(RequestBody):
    product_id: ProductId
    quantity: Quantity


# An amount the storefront computed and the order carries besides its lines; a discount is
# taken off the total, every other kind added to it.
class ChargeCreate(RequestBody):
    kind: ChargeKind
    amount: ChargeAmount
    label: ChargeLabel | None = None


# Who placed an order, as the storefront knows them.
class CustomerCreate(RequestBody):
    email: Email | None = None
    name: CustomerName | None = None


Metadata = Annotated[
    dict[MetadataKey, MetadataValue],
    Field(
        max_length=METADATA_KEYS,
        description="Up to 50 keys of 1-40 characters, each value a string of at most 500.",
        json_schema_extra={"additionalProperties": False},
    ),
]
# In a PATCH: a key set to null is removed; the result holds at most 50 keys.
MetadataChange = Annotated[
    dict[MetadataKey, MetadataValue | None],
    Field(max_length=100, json_schema_extra={"additionalProperties": False}),
]


# The fields of POST /orders besides its lines (which the one-line shorthand keeps apart).
ORDER_FIELDS = frozenset({"currency", "charges", "external_id", "customer", "metadata"})


# The body of POST /orders: a list of lines, or one line's fields as a shorthand.
class OrderCreate(RequestBody):
    # Lines are distinct (each product at most once, which JSON Schema cannot say in full).
    items: list[OrderLineCreate] = Field(
        min_length=1, max_length=50, json_schema_extra={"uniqueItems": True}
    )
    # Optional: if sent, it must be the shop's (case does not matter), else 422
    # currency_mismatch; an order is always in the shop's currency. Left out of the body's dump
    # (an Idempotency-Key's fingerprint): it can only be the shop's, so it changes no order.
    currency: CurrencyCode | None = Field(default=None, exclude=True)
    charges: list[ChargeCreate] = Field(default_factory=list, max_length=10)
    external_id: ExternalId | None = Field(
        default=None,
        description="The storefront's own id for the order, unique for ever: a second order "
        "with it is 409 external_id_conflict, carrying the first one's order_id.",
    )
    customer: CustomerCreate | None = None
    metadata: Metadata = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def expand_one_line_shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict) and "items" not in data and "product_id" in data:
            line = {key: value for key, value in data.items() if key not in ORDER_FIELDS}
            order = {key: value for key, value in data.items() if key in ORDER_FIELDS}
            return {"items": [line], **order}
        return data

    @field_validator("items")
    @classmethod
    def each_product_once(cls, items: list[OrderLineCreate]) -> list[OrderLineCreate]:
        product_ids = [line.product_id for line in items]
        if len(set(product_ids)) != len(product_ids):
            raise ValueError("each product may appear on at most one line")
        return items


# The body of PUT and PATCH /orders/{id}: a status move, a metadata change, or both.
class OrderUpdate(RequestBody):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    status: OrderStatus | SkipJsonSchema[None] = None
    metadata: MetadataChange | SkipJsonSchema[None] = Field(
        default=None,
        description="Merged into the order's metadata: a key set to null is removed; the "
        "result holds at most 50 keys.",
    )

    @model_validator(mode="after")
    def something_to_change(self) -> "OrderUpdate":
        if self.status is None and self.metadata is None:
            raise ValueError("send `status`, `metadata` or both")
        return self


# One line of an order as the API shows it.
class OrderLinePublic(BaseModel):
    product_id: int
    sku: str
    name: str
    quantity: int
    unit_price: MoneyOut
    line_total: MoneyOut
    quantity_shipped: int
    # Unshipped units a refund gave back; shipped units a refund took back; units refunded.
    quantity_released: int
    quantity_returned: int
    quantity_refunded: int


# A charge of an order as the API shows it: as the storefront sent it.
class ChargePublic(BaseModel):
    kind: ChargeKind
    amount: MoneyOut
    label: str | None


# An order's customer as the API shows it (null on an order placed without one).
class CustomerPublic(BaseModel):
    email: str | None
    name: str | None


# An order as the API shows it.
class OrderPublic(BaseModel):
    id: int
    status: OrderStatus
    items: list[OrderLinePublic]
    # The shop's currency (CURRENCY), ISO 4217: the currency of every amount of the order.
    currency: str
    subtotal: MoneyOut = Field(description="The sum of the lines' line_total.")
    charges: list[ChargePublic]
    total: MoneyOut = Field(description="subtotal + shipping + tax + fee − discount.")
    external_id: str | None
    customer: CustomerPublic | None
    metadata: dict[str, str]
    payment_status: PaymentStatus
    payment_id: str | None
    amount_paid: MoneyOut
    amount_refunded: MoneyOut
    amount_refundable: MoneyOut = Field(description="amount_paid − amount_refunded.")
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


PaymentEventType = Literal["payment.succeeded", "payment.failed", "payment.refunded"]


# The body of POST /webhooks/payment.
class PaymentEventCreate(RequestBody):
    type: PaymentEventType
    order_id: OrderId
    amount: Amount
    payment_id: StorableText = Field(min_length=1, max_length=255)
    # Optional: if sent, it must be the shop's (case does not matter), else 422
    # currency_mismatch.
    currency: CurrencyCode | None = None
    # payment.refunded: the provider's id of the refund (recorded once, whichever of this
    # webhook and POST /orders/{id}/refunds reports it first).
    refund_id: ProviderRefundId | None = None

    @model_validator(mode="after")
    def a_refund_names_its_id(self) -> "PaymentEventCreate":
        if self.type == "payment.refunded" and self.refund_id is None:
            raise ValueError("a payment.refunded event carries its `refund_id`")
        return self


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


# One change of a product's quantities, as the API shows it.
class StockMovementPublic(BaseModel):
    id: int
    product_id: int
    reason: MovementReason
    on_hand_delta: int
    committed_delta: int
    delta: int = Field(description="The change of `available`: on_hand_delta − committed_delta.")
    on_hand_after: int
    committed_after: int
    stock_after: int = Field(description="`available` after the change.")
    order_id: int | None
    shipment_id: int | None
    refund_id: int | None
    reference: str | None
    note: str | None
    actor: str = Field(
        description="Who made it: an API key's name, `webhook`, `system` (expiry), `anonymous` "
        "(no API_KEYS), or `unknown` (recorded before actors existed)."
    )
    created_at: Timestamp


# The body of POST /products/{id}/stock-counts: how many units were on the shelf, and when.
class StockCountCreate(RequestBody):
    on_hand: StockLevel
    counted_at: Rfc3339 | None = Field(
        default=None,
        description="When the shelf was counted (default: now); at most 7 days ago, never in "
        "the future. Units that left or arrived after it are kept in the result.",
    )
    reference: Reference | None = None
    note: Note | None = None


# ---------------------------------------------------------------- shipments


# One product and how many of its units a shipment takes.
class ShipmentLineCreate(RequestBody):
    product_id: ProductId
    quantity: Quantity


# The body of POST /orders/{id}/shipments: without `items`, every unit that remains.
class ShipmentCreate(RequestBody):
    items: list[ShipmentLineCreate] | SkipJsonSchema[None] = Field(
        default=None, min_length=1, max_length=50
    )
    carrier: Carrier | None = None
    tracking_number: TrackingNumber | None = None
    tracking_url: TrackingUrl | None = None

    @field_validator("items")
    @classmethod
    def each_product_once(
        cls, items: list[ShipmentLineCreate] | None
    ) -> list[ShipmentLineCreate] | None:
        product_ids = [line.product_id for line in items or ()]
        if len(set(product_ids)) != len(product_ids):
            raise ValueError("each product may appear on at most one line")
        return items


# One product of a shipment, as the API shows it.
class ShipmentItemPublic(BaseModel):
    product_id: int
    sku: str
    quantity: int


# A shipment as the API shows it.
class ShipmentPublic(BaseModel):
    id: int
    order_id: int
    items: list[ShipmentItemPublic]
    carrier: str | None
    tracking_number: str | None
    tracking_url: str | None
    actor: str
    created_at: Timestamp


# ---------------------------------------------------------------- refunds


# One product of an order a refund covers, and what happens to its units.
class RefundItemCreate(RequestBody):
    product_id: ProductId
    quantity: Quantity
    restock: Restock = Restock.AUTO


# The body of POST /orders/{id}/refunds: an amount, the units it covers, or both.
class RefundCreate(RequestBody):
    amount: RefundAmount | SkipJsonSchema[None] = Field(
        default=None,
        description="Money given back; defaults to the items' unit_price × quantity, and is "
        "required without items.",
    )
    items: list[RefundItemCreate] | SkipJsonSchema[None] = Field(
        default=None, min_length=1, max_length=50
    )
    reason: RefundReason | None = None
    note: Note | None = None
    provider_refund_id: ProviderRefundId | None = Field(
        default=None,
        description="The payment provider's id of this refund: recorded once, whichever of "
        "this call and the payment webhook reports it first.",
    )

    @model_validator(mode="after")
    def an_amount_or_items(self) -> "RefundCreate":
        if self.amount is None and not self.items:
            raise ValueError("send an `amount`, `items`, or both")
        product_ids = [item.product_id for item in self.items or ()]
        if len(set(product_ids)) != len(product_ids):
            raise ValueError("each product may appear on at most one line")
        return self


# One product of a refund, as the API shows it.
class RefundItemPublic(BaseModel):
    product_id: int
    quantity: int
    restock: Restock


# A refund as the API shows it.
class RefundPublic(BaseModel):
    id: int
    order_id: int
    amount: MoneyOut
    currency: str
    reason: RefundReason | None
    note: str | None
    items: list[RefundItemPublic]
    provider_refund_id: str | None
    source: RefundSource
    actor: str
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
