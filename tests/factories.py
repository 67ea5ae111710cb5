"""Test data through the service's own rules, so every row is one the service could make."""

import itertools
from decimal import Decimal

from sqlmodel import Session

from app import catalog, orders
from app.schemas import OrderCreate, OrderLineCreate, ProductCreate
from app.tables import Order, Product

_skus = itertools.count(1)


def product_body(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "sku": f"SKU-{next(_skus)}",
        "name": "Coffee mug",
        "price": "12.50",
        "stock": 10,
    }
    body.update(overrides)
    return body


def make_product(session: Session, **overrides: object) -> Product:
    return catalog.create_product(session, ProductCreate.model_validate(product_body(**overrides)))


def make_order(session: Session, *lines: tuple[Product, int]) -> Order:
    request = OrderCreate(
        items=[OrderLineCreate(product_id=product.id, quantity=qty) for product, qty in lines]
    )
    return orders.place_order(session, request)


def stock_of(session: Session, product_id: int) -> int:
    session.expire_all()
    product = session.get(Product, product_id)
    assert product is not None
    return product.stock


def money(value: str) -> Decimal:
    return Decimal(value)
