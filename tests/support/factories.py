"""Test data through the service's own rules and seam, so every row is one the service could
make; and `Db`, which drives the service's `Database` from synchronous tests."""

import asyncio
import contextvars
import itertools
from decimal import Decimal
from typing import Any

from app import orders, products
from app.db.base import Database, Sql
from app.schemas import OrderCreate, OrderLineCreate, ProductCreate

_skus = itertools.count(1)


# A view (a product or an order as the API shows it) whose fields read as attributes too.
class Record(dict[str, Any]):
    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class Db:
    """The service's `Database`, run from synchronous tests on one event loop of its own."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.dialect = database.dialect
        self._runner = asyncio.Runner()
        self._statements: dict[str, Sql] = {}

    def read(self, unit: Any, /, *args: Any, **kwargs: Any) -> Any:
        return self._runner.run(self.database.read(unit, *args, **kwargs))

    def scan(self, unit: Any, /, *args: Any, **kwargs: Any) -> Any:
        return self._runner.run(self.database.scan(unit, *args, **kwargs))

    def write(self, unit: Any, /, *args: Any, **kwargs: Any) -> Any:
        # In the caller's context: a change made under `acting_as(name)` records that actor.
        context = contextvars.copy_context()
        return self._runner.run(self.database.write(unit, *args, **kwargs), context=context)

    def run(self, coroutine: Any) -> Any:
        return self._runner.run(coroutine)

    def _sql(self, text: str) -> Sql:
        return self._statements.setdefault(text, Sql(text))

    def rows(self, text: str, **params: Any) -> list[dict[str, Any]]:
        """The rows of a statement, read through the seam (the latest committed state)."""

        async def unit(conn: Any) -> list[dict[str, Any]]:
            return await conn.fetch_all(self._sql(text), params)

        return self.read(unit)

    def value(self, text: str, **params: Any) -> Any:
        rows = self.rows(text, **params)
        return next(iter(rows[0].values())) if rows else None

    def execute(self, text: str, **params: Any) -> int:
        """A statement in a write transaction of its own (to set up a state by hand)."""

        async def unit(conn: Any) -> int:
            return await conn.execute(self._sql(text), params)

        return self.write(unit)

    def close(self) -> None:
        self._runner.run(self.database.close())
        self._runner.close()


def product_body(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "sku": f"SKU-{next(_skus)}",
        "name": "Coffee mug",
        "price": "12.50",
        "stock": 10,
    }
    body.update(overrides)
    return body


def make_product(db: Db, **overrides: object) -> Record:
    data = ProductCreate.model_validate(product_body(**overrides))
    return Record(db.write(products.create_product, data))


def make_order(db: Db, *lines: tuple[Any, int]) -> Record:
    request = OrderCreate(
        items=[OrderLineCreate(product_id=product["id"], quantity=qty) for product, qty in lines]
    )
    return Record(db.write(orders.place_order, request))


def stock_of(db: Db, product_id: int) -> int:
    return int(db.value("SELECT on_hand - committed FROM products WHERE id = :id", id=product_id))


def orders_in_db(db: Db) -> int:
    return int(db.value("SELECT count(*) FROM orders"))


def money(value: str) -> Decimal:
    return Decimal(value)


def product_row(db: Db, product_id: int) -> Record:
    """The product's stored row, archived or not (price in cents, archived_at)."""
    rows = db.rows("SELECT * FROM products WHERE id = :id", id=product_id)
    assert rows, f"no product {product_id}"
    return Record(rows[0])
