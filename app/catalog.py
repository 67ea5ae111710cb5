"""The product catalog's rules: SKUs unique among live products, conditional updates, archiving."""

import hashlib
from typing import Any

from sqlalchemy import bindparam, func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.database import write_transaction
from app.errors import ApiError
from app.schemas import ProductCreate, ProductPublic, ProductUpdate
from app.tables import Product
from app.types import to_cents, utcnow

# Built once: SQLAlchemy then reuses its compiled form instead of building and hashing the
# statement again for every request, which was about 40 % of reading a product.
_LIVE_PRODUCT = select(Product).where(
    Product.id == bindparam("product_id"), col(Product.archived_at).is_(None)
)


def product_not_found(product_id: int) -> ApiError:
    return ApiError(
        404,
        "product_not_found",
        "Product not found",
        f"Product {product_id} does not exist.",
        product_id=product_id,
    )


def _sku_conflict(sku: str | None) -> ApiError:
    return ApiError(
        409,
        "sku_conflict",
        "SKU already in use",
        f"SKU {sku!r} is already used by another product.",
        sku=sku,
    )


def etag(product: Product) -> str:
    """A strong validator that changes whenever anything a client sees of the product does."""
    representation = ProductPublic.of(product).model_dump_json()
    return '"' + hashlib.sha256(representation.encode()).hexdigest()[:32] + '"'


def _if_match_allows(if_match: str | None, current: str) -> bool:
    if if_match is None:
        return True
    candidates = {tag.strip() for tag in if_match.split(",")}
    return "*" in candidates or current in candidates


def create_product(session: Session, data: ProductCreate) -> Product:
    now = utcnow()
    product = Product(
        sku=data.sku,
        name=data.name,
        description=data.description,
        price_cents=to_cents(data.price),
        stock=data.stock,
        created_at=now,
        updated_at=now,
    )
    try:
        with write_transaction(session):
            session.add(product)
    except IntegrityError:
        raise _sku_conflict(data.sku) from None
    return product


def get_product(session: Session, product_id: int) -> Product:
    product = session.exec(_LIVE_PRODUCT, params={"product_id": product_id}).first()
    if product is None:
        raise product_not_found(product_id)
    return product


def list_products(
    session: Session,
    *,
    limit: int,
    offset: int,
    sku: str | None = None,
    q: str | None = None,
    in_stock: bool | None = None,
) -> tuple[list[Product], int]:
    conditions: list[Any] = [col(Product.archived_at).is_(None)]
    if sku is not None:
        conditions.append(Product.sku == sku)
    if q:
        conditions.append(func.lower(Product.name).contains(q.lower(), autoescape=True))
    if in_stock is not None:
        conditions.append(col(Product.stock) > 0 if in_stock else Product.stock == 0)
    total = session.exec(select(func.count()).select_from(Product).where(*conditions)).one()
    page = session.exec(
        select(Product).where(*conditions).order_by(col(Product.id)).limit(limit).offset(offset)
    ).all()
    return list(page), total


def update_product(
    session: Session, product_id: int, changes: ProductUpdate, if_match: str | None = None
) -> Product:
    fields = changes.model_dump(exclude_unset=True)
    if "price" in fields:
        fields["price_cents"] = to_cents(fields.pop("price"))
    try:
        with write_transaction(session):
            product = session.exec(
                select(Product)
                .where(Product.id == product_id, col(Product.archived_at).is_(None))
                .with_for_update()
            ).first()
            if product is None:
                raise product_not_found(product_id)
            if not _if_match_allows(if_match, etag(product)):
                raise ApiError(
                    412,
                    "precondition_failed",
                    "Precondition failed",
                    "If-Match does not match the product's current ETag.",
                    etag=etag(product),
                )
            if fields:
                product.sqlmodel_update({**fields, "updated_at": utcnow()})
                session.add(product)
                session.flush()
    except IntegrityError:
        raise _sku_conflict(fields.get("sku")) from None
    return product


def archive_product(session: Session, product_id: int) -> None:
    """Archive, not erase: past orders keep their snapshot, and the SKU is free again."""
    with write_transaction(session):
        archived = session.execute(
            update(Product)
            .where(col(Product.id) == product_id, col(Product.archived_at).is_(None))
            .values(archived_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if archived.rowcount == 0:
            raise product_not_found(product_id)
