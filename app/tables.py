"""The tables Alembic migrates: what is stored, and the one list of each set of values (order
statuses, cancel reasons, stock movement reasons) that CHECK constraints, schemas and docs use."""

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.engine import Connection
from sqlmodel import Field as TableField
from sqlmodel import Relationship, SQLModel
from sqlmodel.sql.sqltypes import UTCDateTime

from app.core.access import UNKNOWN

# Predictable constraint names keep migrations readable and diffable.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

LIVE = text("archived_at IS NULL")
PENDING = text("status = 'PENDING'")


# The order lifecycle; transitions live in app.orders.
class OrderStatus(StrEnum):
    PENDING = "PENDING"
    PAID = "PAID"
    PARTIALLY_SHIPPED = "PARTIALLY_SHIPPED"
    SHIPPED = "SHIPPED"
    CANCELED = "CANCELED"


# Why an order was canceled: by an API call, by a failed payment, or by the payment window.
class CancelReason(StrEnum):
    REQUESTED = "requested"
    PAYMENT_FAILED = "payment_failed"
    EXPIRED = "expired"
    # A refund released every unshipped unit of an order that had shipped nothing.
    REFUNDED = "refunded"


# Why money went back, as the shop records it (Stripe's reasons, and `damaged`, `not_received`).
class RefundReason(StrEnum):
    REQUESTED_BY_CUSTOMER = "requested_by_customer"
    DAMAGED = "damaged"
    NOT_RECEIVED = "not_received"
    FRAUDULENT = "fraudulent"
    OTHER = "other"


# Which path recorded a refund: the refunds call, or the payment provider's webhook.
class RefundSource(StrEnum):
    API = "api"
    WEBHOOK = "webhook"


# What a refund does with the units it covers: `auto` gives them back (unshipped units are
# released, shipped ones return to the shelf); `none` moves nothing (damaged goods).
class Restock(StrEnum):
    AUTO = "auto"
    NONE = "none"


# Where an order's money stands: set by the payment webhooks and by refunds, never by a status
# move or a cancel.
class PaymentStatus(StrEnum):
    UNPAID = "unpaid"
    PAID = "paid"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


# What a storefront may charge on an order besides its lines (it computes them; the service
# adds them up). A discount is taken off.
class ChargeKind(StrEnum):
    SHIPPING = "shipping"
    TAX = "tax"
    FEE = "fee"
    DISCOUNT = "discount"


# Why a warehouse adjusts stock (POST /products/{id}/stock-adjustments).
class AdjustmentReason(StrEnum):
    RECEIVED = "received"
    RETURNED = "returned"
    DAMAGED = "damaged"
    LOST = "lost"
    CORRECTION = "correction"


# The reasons the service records by itself, as stock moves with the catalog and orders.
class SystemReason(StrEnum):
    INITIAL = "initial"
    ORDER_PLACED = "order_placed"
    ORDER_CANCELED = "order_canceled"
    ORDER_EXPIRED = "order_expired"
    SHIPPED = "shipped"
    ORDER_LINE_RELEASED = "order_line_released"
    ORDER_RETURNED = "order_returned"
    STOCK_SET = "stock_set"
    COUNTED = "counted"
    # Once per product with open orders, when a database of one quantity (stock) was upgraded
    # to two (migration 0011).
    MIGRATED = "migrated"


# Every reason a stock movement may carry: the service's own, then the adjustments'.
MovementReason = StrEnum(  # type: ignore[misc]
    "MovementReason", [(r.name, r.value) for r in (*SystemReason, *AdjustmentReason)]
)
# The movements that belong to an order (and only those carry its id).
ORDER_REASONS = (
    SystemReason.ORDER_PLACED,
    SystemReason.ORDER_CANCELED,
    SystemReason.ORDER_EXPIRED,
    SystemReason.SHIPPED,
    SystemReason.ORDER_LINE_RELEASED,
    SystemReason.ORDER_RETURNED,
)


def one_of(column: str, values: Iterable[str]) -> str:
    """A CHECK constraint's condition: `column` holds one of `values`."""
    return f"{column} IN ({', '.join(repr(str(value)) for value in values)})"


# What a new order may take of a product (`stock` to earlier clients), as SQL over its row:
# derived, never stored, and written here only (the view's `available` and `stock`, the
# `available` sort and its expression index, the `in_stock` filter; app/products.py).
AVAILABLE = "on_hand - committed"
# The (key, id) index of each sort of GET /products but `id` (the primary key), by name.
PRODUCT_SORT_INDEXES: dict[str, tuple[str, ...]] = {
    "name": ("name", "id"),
    "price": ("price_cents", "id"),
    "available": (AVAILABLE, "id"),
    "updated_at": ("updated_at", "id"),
}


# A product in the catalog; archived products keep their row for past orders' sake.
class Product(SQLModel, table=True):
    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint("price_cents > 0", name="price_positive"),
        # `available` (on_hand - committed) may go below 0 (a count that finds fewer units than
        # are promised), but neither stored quantity may.
        CheckConstraint("on_hand >= 0", name="on_hand_not_negative"),
        CheckConstraint("committed >= 0", name="committed_not_negative"),
        # SKUs are unique among live products only, so archiving frees a SKU.
        Index("uq_products_live_sku", "sku", unique=True, sqlite_where=LIVE, postgresql_where=LIVE),
        # GET /products?sort=: one index per key, on (key, id) over live products, so a page
        # after a cursor starts at the cursor, and a deep offset page skips over the index.
        *(
            Index(
                f"ix_products_live_{name}_id",
                # A key that is an expression (not a column name) is indexed as one.
                *(column if column.isidentifier() else text(f"({column})") for column in columns),
                sqlite_where=LIVE,
                postgresql_where=LIVE,
            )
            for name, columns in PRODUCT_SORT_INDEXES.items()
        ),
    )

    id: int | None = TableField(default=None, sa_column=Column(Integer, primary_key=True))
    sku: str = TableField(sa_column=Column(String(64), nullable=False))
    name: str = TableField(sa_column=Column(String(200), nullable=False))
    description: str | None = TableField(default=None, sa_column=Column(String(2000)))
    price_cents: int = TableField(sa_column=Column(BigInteger, nullable=False))
    # Units the shop holds, and units promised to orders placed and not yet shipped or released.
    on_hand: int = TableField(sa_column=Column(BigInteger, nullable=False))
    committed: int = TableField(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default="0")
    )
    # Below it, a product is low on stock (the `low_stock` filter); null: no threshold.
    low_stock_threshold: int | None = TableField(default=None, sa_column=Column(BigInteger))
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None = None
    # When the shelf was last counted (POST /products/{id}/stock-counts): an older count is
    # refused, as it could not say how many units are there now.
    counted_at: datetime | None = None

    @property
    def available(self) -> int:
        """What new orders may take: the API's `available`, and `stock` for earlier clients."""
        return self.on_hand - self.committed

    @property
    def stock(self) -> int:
        return self.available


# One row: how many products are live. Triggers on `products` keep it in the transaction that
# creates, archives or deletes one, so an unfiltered page's `total` is this row's read instead
# of a count over the whole catalog (28 µs at 1,000 products, 11 ms at 200,000). Nothing else
# writes it. Migration 0007 and `create_all` both build it with `count_live_products`.
catalog_counts_table = Table(
    "catalog_counts",
    SQLModel.metadata,
    Column("id", Integer, primary_key=True),
    Column("live_products", BigInteger, nullable=False),
    CheckConstraint("id = 1", name="one_row"),
    CheckConstraint("live_products >= 0", name="not_negative"),
)

_ADD = "UPDATE catalog_counts SET live_products = live_products + {delta}"
_ARCHIVE_DELTA = "CASE WHEN NEW.archived_at IS NULL THEN 1 ELSE -1 END"
_STATEMENT_DELTA = (
    "(CASE TG_OP WHEN 'INSERT' THEN 1 ELSE -1 END) "
    "* (SELECT count(*) FROM changed WHERE archived_at IS NULL)"
)
# They fire on an insert, a delete, and an update that names `archived_at`: an order's stock
# update names only `stock`, and does not fire them.
_COUNT_TRIGGERS = {
    "sqlite": (
        f"""CREATE TRIGGER products_counted_insert AFTER INSERT ON products
        WHEN NEW.archived_at IS NULL BEGIN {_ADD.format(delta=1)}; END""",
        f"""CREATE TRIGGER products_counted_delete AFTER DELETE ON products
        WHEN OLD.archived_at IS NULL BEGIN {_ADD.format(delta=-1)}; END""",
        f"""CREATE TRIGGER products_counted_archive AFTER UPDATE OF archived_at ON products
        WHEN (OLD.archived_at IS NULL) <> (NEW.archived_at IS NULL)
        BEGIN {_ADD.format(delta=_ARCHIVE_DELTA)}; END""",
    ),
    # Inserts and deletes once per statement, over its transition table (a COPY of 300,000
    # products is one update of the row, not 300,000); an update that names archived_at once
    # per row it changes (PostgreSQL allows no transition table with a column list).
    "postgresql": (
        f"""CREATE OR REPLACE FUNCTION products_counted_statement() RETURNS trigger
        LANGUAGE plpgsql AS $$ BEGIN
            {_ADD.format(delta=_STATEMENT_DELTA)};
            RETURN NULL;
        END $$""",
        """CREATE TRIGGER products_counted_insert AFTER INSERT ON products
        REFERENCING NEW TABLE AS changed FOR EACH STATEMENT
        EXECUTE FUNCTION products_counted_statement()""",
        """CREATE TRIGGER products_counted_delete AFTER DELETE ON products
        REFERENCING OLD TABLE AS changed FOR EACH STATEMENT
        EXECUTE FUNCTION products_counted_statement()""",
        f"""CREATE OR REPLACE FUNCTION products_counted_archive() RETURNS trigger
        LANGUAGE plpgsql AS $$ BEGIN {_ADD.format(delta=_ARCHIVE_DELTA)}; RETURN NULL; END $$""",
        """CREATE TRIGGER products_counted_archive AFTER UPDATE OF archived_at ON products
        FOR EACH ROW WHEN ((OLD.archived_at IS NULL) <> (NEW.archived_at IS NULL))
        EXECUTE FUNCTION products_counted_archive()""",
    ),
}


def count_live_products(connection: Connection) -> None:
    """Fill `catalog_counts` from the products there are, and add the triggers that keep it.
    On SQLite a rebuild of `products` (Alembic's batch mode) drops them: call this again."""
    connection.execute(
        text(
            "INSERT INTO catalog_counts (id, live_products) "
            "SELECT 1, count(*) FROM products WHERE archived_at IS NULL"
        )
    )
    for statement in _COUNT_TRIGGERS[connection.dialect.name]:
        connection.execute(text(statement))


@event.listens_for(SQLModel.metadata, "after_create")
def _count_after_create_all(target: Any, connection: Connection, **kw: Any) -> None:
    # `create_all` (tests build schemas with it) runs this once every table exists.
    count_live_products(connection)


# The CHECK constraint that keeps `orders.status` to the statuses above.
STATUS_KNOWN = "status IN (" + ", ".join(f"'{status.value}'" for status in OrderStatus) + ")"


# An order: its lines are a snapshot of the products as they were when it was placed.
class Order(SQLModel, table=True):
    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint(STATUS_KNOWN, name="status_known"),
        CheckConstraint("total_cents >= 0", name="total_not_negative"),
        # GET /orders?sort=: each key with the id, so a page after a cursor starts at the
        # cursor; by status (the default sort, newest first), a page is a range of one index.
        Index("ix_orders_created_at_id", "created_at", "id"),
        Index("ix_orders_status_created_at_id", "status", "created_at", "id"),
        Index("ix_orders_total_cents_id", "total_cents", "id"),
        Index("ix_orders_updated_at_id", "updated_at", "id"),
        Index("uq_orders_external_id", "external_id", unique=True),
        # The payment window's sweeper reads only the PENDING orders, soonest deadline first.
        Index(
            "ix_orders_pending_expires_at",
            "expires_at",
            sqlite_where=PENDING,
            postgresql_where=PENDING,
        ),
    )

    id: int | None = TableField(default=None, sa_column=Column(Integer, primary_key=True))
    status: str = TableField(sa_column=Column(String(24), nullable=False))
    total_cents: int = TableField(sa_column=Column(BigInteger, nullable=False))
    created_at: datetime
    updated_at: datetime
    # A CancelReason once CANCELED. No CHECK constraint: adding one to a table that others
    # reference rebuilds it on SQLite, which its foreign keys forbid inside a migration.
    cancel_reason: str | None = TableField(default=None, sa_column=Column(String(16)))
    # The end of the payment window (PENDING_ORDER_TTL_SECONDS when the order was placed).
    expires_at: datetime | None = None
    # Σ line_total; `charges` as the storefront sent them (JSON); total = subtotal + charges.
    subtotal_cents: int = TableField(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default="0")
    )
    charges: str = TableField(
        default="[]", sa_column=Column(Text, nullable=False, server_default="[]")
    )
    # The storefront's own id for the order: unique for ever.
    external_id: str | None = TableField(default=None, sa_column=Column(String(128)))
    customer_email: str | None = TableField(default=None, sa_column=Column(String(254), index=True))
    customer_name: str | None = TableField(default=None, sa_column=Column(String(200)))
    # The order's `metadata` (JSON); `metadata` itself is SQLAlchemy's name for the schema.
    metadata_json: str = TableField(
        default="{}", sa_column=Column(Text, nullable=False, server_default="{}")
    )
    payment_status: str = TableField(
        default=PaymentStatus.UNPAID,
        sa_column=Column(
            String(24),
            CheckConstraint(one_of("payment_status", PaymentStatus), name="payment_status_known"),
            nullable=False,
            server_default=PaymentStatus.UNPAID.value,
        ),
    )
    payment_id: str | None = TableField(default=None, sa_column=Column(String(255)))
    amount_paid_cents: int = TableField(
        default=0,
        sa_column=Column(
            BigInteger,
            CheckConstraint("amount_paid_cents >= 0", name="amount_paid_not_negative"),
            nullable=False,
            server_default="0",
        ),
    )
    # Σ its refunds, never more than was paid (refunds are capped in one conditional update).
    amount_refunded_cents: int = TableField(
        default=0,
        sa_column=Column(
            BigInteger,
            CheckConstraint(
                "amount_refunded_cents >= 0 AND amount_refunded_cents <= amount_paid_cents",
                name="refunds_within_paid",
            ),
            nullable=False,
            server_default="0",
        ),
    )

    lines: list["OrderLine"] = Relationship(
        sa_relationship_kwargs={"lazy": "selectin", "order_by": "OrderLine.id"}
    )


def _line_count(name: str, within: str | None = None) -> Column:  # type: ignore[type-arg]
    """A count of an order line's units: 0 at first, never negative, and `within` a bound.
    Column constraints, so that a migration can add them with the column on SQLite too."""
    condition = f"{name} >= 0" + (f" AND {within}" if within else "")
    return Column(
        name,
        BigInteger,
        CheckConstraint(condition, name=f"{name}_in_range"),
        nullable=False,
        server_default="0",
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
    # Units shipped; unshipped units a refund gave back (released); shipped units a refund took
    # back into stock (returned); units a refund covered. The line's committed units are
    # quantity - shipped - released while its order is not CANCELED.
    quantity_shipped: int = TableField(default=0, sa_column=_line_count("quantity_shipped"))
    quantity_released: int = TableField(
        default=0,
        sa_column=_line_count(
            "quantity_released", "quantity_shipped + quantity_released <= quantity"
        ),
    )
    quantity_returned: int = TableField(
        default=0, sa_column=_line_count("quantity_returned", "quantity_returned <= quantity")
    )
    quantity_refunded: int = TableField(
        default=0, sa_column=_line_count("quantity_refunded", "quantity_refunded <= quantity")
    )


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


# Who sent a payment event, by the door it came through: `payment` (POST /webhooks/payment)
# or `stripe` (POST /webhooks/stripe). Event ids are unique per provider, so no id one sender
# chose can ever be taken for the other's.
class PaymentProvider(StrEnum):
    PAYMENT = "payment"
    STRIPE = "stripe"


# A payment event applied to an order, recorded in the same transaction as its effect; the
# unique (provider, event id) is what makes a redelivery a no-op. The raw body is kept for audit.
class PaymentEvent(SQLModel, table=True):
    __tablename__ = "payment_events"
    __table_args__ = (
        UniqueConstraint("provider", "event_id", name="uq_payment_events_provider_event_id"),
        CheckConstraint(one_of("provider", PaymentProvider), name="provider_known"),
    )

    id: int | None = TableField(default=None, sa_column=Column(Integer, primary_key=True))
    provider: str = TableField(
        sa_column=Column(String(16), nullable=False, server_default=PaymentProvider.PAYMENT.value)
    )
    event_id: str = TableField(sa_column=Column(String(128), nullable=False))
    order_id: int = TableField(
        sa_column=Column(Integer, ForeignKey("orders.id"), nullable=False, index=True)
    )
    type: str = TableField(sa_column=Column(String(32), nullable=False))
    payment_id: str = TableField(sa_column=Column(String(255), nullable=False))
    amount_cents: int = TableField(sa_column=Column(BigInteger, nullable=False))
    raw_body: str = TableField(sa_column=Column(Text, nullable=False))
    signed_at: datetime
    processed_at: datetime


# Goods that left the shelf for an order: one shipment, and a row per product it took.
class Shipment(SQLModel, table=True):
    __tablename__ = "shipments"
    __table_args__ = (Index("ix_shipments_order_id_id", "order_id", "id"),)

    id: int | None = TableField(default=None, sa_column=Column(Integer, primary_key=True))
    order_id: int = TableField(sa_column=Column(Integer, ForeignKey("orders.id"), nullable=False))
    carrier: str | None = TableField(default=None, sa_column=Column(String(64)))
    tracking_number: str | None = TableField(default=None, sa_column=Column(String(128)))
    tracking_url: str | None = TableField(default=None, sa_column=Column(String(2048)))
    actor: str = TableField(sa_column=Column(String(32), nullable=False))
    created_at: datetime


class ShipmentItem(SQLModel, table=True):
    __tablename__ = "shipment_items"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        UniqueConstraint("shipment_id", "product_id", name="uq_shipment_items_shipment_id"),
    )

    id: int | None = TableField(default=None, sa_column=Column(Integer, primary_key=True))
    shipment_id: int = TableField(
        sa_column=Column(Integer, ForeignKey("shipments.id"), nullable=False)
    )
    product_id: int = TableField(
        sa_column=Column(Integer, ForeignKey("products.id"), nullable=False)
    )
    sku: str = TableField(sa_column=Column(String(64), nullable=False))
    quantity: int = TableField(sa_column=Column(BigInteger, nullable=False))


# Money given back on an order (POST /orders/{id}/refunds, or the payment webhook), with the
# units it covers (`items`, JSON). `provider_refund_id` is unique: the provider's refund is
# recorded once, whichever path reports it first.
class Refund(SQLModel, table=True):
    __tablename__ = "refunds"
    __table_args__ = (
        CheckConstraint("amount_cents > 0", name="amount_positive"),
        Index("ix_refunds_order_id_id", "order_id", "id"),
    )

    id: int | None = TableField(default=None, sa_column=Column(Integer, primary_key=True))
    order_id: int = TableField(sa_column=Column(Integer, ForeignKey("orders.id"), nullable=False))
    amount_cents: int = TableField(sa_column=Column(BigInteger, nullable=False))
    reason: str | None = TableField(default=None, sa_column=Column(String(32)))
    note: str | None = TableField(default=None, sa_column=Column(String(500)))
    provider_refund_id: str | None = TableField(
        default=None, sa_column=Column(String(128), unique=True)
    )
    source: str = TableField(sa_column=Column(String(16), nullable=False))
    items: str = TableField(sa_column=Column(Text, nullable=False, server_default="[]"))
    actor: str = TableField(sa_column=Column(String(32), nullable=False))
    created_at: datetime


# The movements of goods leaving the shelf, and of a refund's units coming back.
SHIPMENT_REASONS = (SystemReason.SHIPPED,)
REFUND_REASONS = (SystemReason.ORDER_LINE_RELEASED, SystemReason.ORDER_RETURNED)


# One change of a product's quantities, written in the same transaction as the change: for
# every product, on_hand = the sum of its movements' on_hand_delta, committed = the sum of
# their committed_delta, and the newest one's *_after are the product's quantities. `delta`
# and `stock_after` (the change of `available`, and `available` after it) are what earlier
# versions stored; the API derives them (app/ledger.py).
class StockMovement(SQLModel, table=True):
    __tablename__ = "stock_movements"
    __table_args__ = (
        # A count that corrects nothing is recorded too: it says when the shelf was counted.
        CheckConstraint(
            f"on_hand_delta <> 0 OR committed_delta <> 0 OR reason = '{SystemReason.COUNTED}'",
            name="moves_something",
        ),
        CheckConstraint(one_of("reason", MovementReason), name="reason_known"),
        CheckConstraint("on_hand_after >= 0", name="on_hand_after_not_negative"),
        CheckConstraint("committed_after >= 0", name="committed_after_not_negative"),
        CheckConstraint(
            f"({one_of('reason', ORDER_REASONS)}) = (order_id IS NOT NULL)",
            name="order_id_iff_order_reason",
        ),
        CheckConstraint(
            f"({one_of('reason', SHIPMENT_REASONS)}) = (shipment_id IS NOT NULL)",
            name="shipment_id_iff_shipped",
        ),
        CheckConstraint(
            f"({one_of('reason', REFUND_REASONS)}) = (refund_id IS NOT NULL)",
            name="refund_id_iff_refund_reason",
        ),
        # A product's history, newest first, and its sums: one index range either way.
        Index("ix_stock_movements_product_id_id", "product_id", "id"),
    )

    id: int | None = TableField(default=None, sa_column=Column(Integer, primary_key=True))
    product_id: int = TableField(
        sa_column=Column(Integer, ForeignKey("products.id"), nullable=False)
    )
    reason: str = TableField(sa_column=Column(String(32), nullable=False))
    on_hand_delta: int = TableField(sa_column=Column(BigInteger, nullable=False))
    committed_delta: int = TableField(sa_column=Column(BigInteger, nullable=False))
    on_hand_after: int = TableField(sa_column=Column(BigInteger, nullable=False))
    committed_after: int = TableField(sa_column=Column(BigInteger, nullable=False))
    order_id: int | None = TableField(
        default=None, sa_column=Column(Integer, ForeignKey("orders.id"), index=True)
    )
    shipment_id: int | None = TableField(
        default=None, sa_column=Column(Integer, ForeignKey("shipments.id"))
    )
    refund_id: int | None = TableField(
        default=None, sa_column=Column(Integer, ForeignKey("refunds.id"))
    )
    reference: str | None = TableField(default=None, sa_column=Column(String(128)))
    note: str | None = TableField(default=None, sa_column=Column(String(500)))
    created_at: datetime
    # Who made the change: a key's name, `webhook`, `system` or `anonymous` (app/core/access.py);
    # `unknown` on movements recorded before actors existed (migration 0009).
    actor: str = TableField(
        default=UNKNOWN, sa_column=Column(String(32), nullable=False, server_default=UNKNOWN)
    )


# ---------------------------------------------------------------- outbound events


# What the service tells other systems; this one list drives the CHECK below, the feed's
# `type` filter, the subscriptions' `types`, the metrics and docs/events.md.
class EventType(StrEnum):
    ORDER_CREATED = "order.created"
    ORDER_PAID = "order.paid"
    ORDER_PARTIALLY_SHIPPED = "order.partially_shipped"
    ORDER_SHIPPED = "order.shipped"
    ORDER_CANCELED = "order.canceled"
    # A change of the order's own fields (its metadata), not of its status.
    ORDER_UPDATED = "order.updated"
    SHIPMENT_CREATED = "shipment.created"
    REFUND_CREATED = "refund.created"
    STOCK_ADJUSTED = "stock.adjusted"
    STOCK_LOW = "stock.low"
    STOCK_OUT = "stock.out"
    STOCK_REPLENISHED = "stock.replenished"
    PRODUCT_CREATED = "product.created"
    PRODUCT_UPDATED = "product.updated"
    PRODUCT_ARCHIVED = "product.archived"
    SUBSCRIPTION_DISABLED = "subscription.disabled"


# Each state of one event's delivery to one subscription.
class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


def _one_of(column: str, values: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(str(value)) for value in values)})"


# The outbox: one row per event, inserted in the transaction of the change it reports.
# The feed orders by (txid, seq): txid is the writing transaction's id on PostgreSQL (0 on
# SQLite, whose single writer commits in seq order), so that a reader can be shown only events
# no still-running transaction can sort before (app/events/outbox.py explains).
events_table = Table(
    "events",
    SQLModel.metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("id", String(32), nullable=False, unique=True),
    Column("type", String(32), nullable=False),
    Column("txid", BigInteger, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False, index=True),
    Column("data", Text, nullable=False),
    # Who made the change (as a movement's actor; `unknown` before migration 0009).
    Column("actor", String(32), nullable=False, server_default=UNKNOWN),
    # The W3C `traceparent` current when it was recorded (tracing on), sent on its deliveries.
    Column("traceparent", String(55), nullable=True),
    CheckConstraint(_one_of("type", EventType), name="type_known"),
    Index("ix_events_feed", "txid", "seq"),
    Index("ix_events_type_feed", "type", "txid", "seq"),
    # SQLite: never reuse a purged event's seq, or a consumer's cursor could skip new events.
    sqlite_autoincrement=True,
)

# A receiver of push deliveries. `types` is a JSON array of event types, or ["*"].
subscriptions_table = Table(
    "event_subscriptions",
    SQLModel.metadata,
    Column("id", Integer, primary_key=True),
    Column("url", String(2048), nullable=False),
    Column("types", Text, nullable=False),
    Column("description", String(500)),
    Column("enabled", Boolean, nullable=False),
    # The signing key, `whsec_<base64>`; shown once, at creation or rotation, never logged.
    Column("secret", String(128), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    # The key a rotation replaced, still signing beside the new one until it expires.
    Column("previous_secret", String(128)),
    Column("previous_secret_expires_at", UTCDateTime()),
    # When the unbroken run of failed attempts began (NULL: the last attempt succeeded, or
    # none failed); the service disables a subscription failing for 3 days.
    Column("failing_since", UTCDateTime()),
    # On SQLite: never hand a deleted subscription's id to a new one (migration 0008).
    sqlite_autoincrement=True,
)

# One event's delivery to one subscription: its state, its last attempt and, while a worker
# holds it, the lease (token and expiry) that keeps other workers off it.
deliveries_table = Table(
    "event_deliveries",
    SQLModel.metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("event_seq", BigInteger, ForeignKey("events.seq", ondelete="CASCADE"), nullable=False),
    Column(
        "subscription_id",
        Integer,
        ForeignKey("event_subscriptions.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("attempt", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("response_status", Integer),
    Column("error", String(500)),
    Column("duration_ms", Integer),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("attempted_at", UTCDateTime()),
    Column("next_attempt_at", UTCDateTime()),
    Column("lease_token", String(32)),
    Column("lease_until", UTCDateTime()),
    CheckConstraint(_one_of("status", DeliveryStatus), name="status_known"),
    UniqueConstraint("event_seq", "subscription_id", name="uq_event_deliveries_event_seq"),
    # The workers' queue: due deliveries, oldest due first.
    Index(
        "ix_event_deliveries_due",
        "next_attempt_at",
        sqlite_where=text("status = 'pending'"),
        postgresql_where=text("status = 'pending'"),
    ),
    # The backlog's age: the oldest delivery still pending.
    Index(
        "ix_event_deliveries_pending_since",
        "created_at",
        sqlite_where=text("status = 'pending'"),
        postgresql_where=text("status = 'pending'"),
    ),
    # On SQLite: a delivery's id (shown in its subscription's log) is never handed out again.
    sqlite_autoincrement=True,
)
