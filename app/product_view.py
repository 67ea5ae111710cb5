"""A product as the API shows it (ProductPublic), defined once: the catalog's rules
(app/products.py) and the ledger's stock events (app/ledger.py) both show products this way.
Below both: it imports neither."""

from app.db.views import Column, Money, ShopCurrency, Time, View
from app.schemas import ProductPublic
from app.tables import AVAILABLE

# A product as the API shows it (ProductPublic): how each of its fields is made from the
# products table, checked against the model at import (app/db/views.py). `product_view` builds
# it from a row; on SQLite, `_VIEW_JSON` has the database write it as JSON text for a list.
PRODUCT = View(
    ProductPublic,
    {
        "id": Column("id"),
        "sku": Column("sku"),
        "name": Column("name"),
        "description": Column("description"),
        "price": Money("price_cents"),
        "currency": ShopCurrency(),
        "on_hand": Column("on_hand"),
        "committed": Column("committed"),
        "available": Column(AVAILABLE),
        "stock": Column(AVAILABLE),
        "low_stock_threshold": Column("low_stock_threshold"),
        "created_at": Time("created_at"),
        "updated_at": Time("updated_at"),
    },
)
VIEW_FIELDS = PRODUCT.fields
product_view = PRODUCT.of


def columns(dialect: str) -> str:
    """A product's columns as `product_view` reads them: its times already as the API's text."""
    return PRODUCT.select(dialect)
