"""Product endpoints: the catalog over HTTP."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Response

from app import catalog
from app.database import DatabaseDep
from app.errors import problem_responses
from app.routers.params import Limit, Offset, ResourceId
from app.schemas import Page, ProductCreate, ProductPublic, ProductUpdate
from app.types import SKU_PATTERN, TEXT_PATTERN

router = APIRouter(prefix="/products", tags=["products"])

CREATE_EXAMPLES = {
    "product": {
        "summary": "A product with stock",
        "value": {
            "sku": "MUG-001",
            "name": "Coffee mug",
            "description": "Stoneware, 350 ml",
            "price": "12.50",
            "stock": 100,
        },
    },
    "price as a number": {
        "summary": "Price as a JSON number",
        "value": {"sku": "TEE-M-BLK", "name": "T-shirt, M, black", "price": 19.99, "stock": 5},
    },
}
IfMatch = Annotated[
    str | None,
    Header(description="Apply the change only if the product's current ETag is one of these."),
]


def _with_etag(response: Response, product: catalog.Product) -> ProductPublic:
    response.headers["ETag"] = catalog.etag(product)
    return ProductPublic.of(product)


@router.post(
    "",
    status_code=201,
    summary="Create a product",
    description="Adds a product to the catalog. The SKU must not be used by another live "
    "product; `price` may be sent as a number or a string and is always returned as a string.",
    responses=problem_responses(409, 422),
)
async def create_product(
    body: Annotated[ProductCreate, Body(openapi_examples=CREATE_EXAMPLES)],
    database: DatabaseDep,
    response: Response,
) -> ProductPublic:
    product = await database.run(catalog.create_product, body)
    response.headers["Location"] = f"/products/{product.id}"
    return _with_etag(response, product)


@router.get("", summary="List products", responses=problem_responses(422))
async def list_products(
    database: DatabaseDep,
    limit: Limit = 20,
    offset: Offset = 0,
    sku: Annotated[
        str | None, Query(max_length=64, pattern=SKU_PATTERN, description="Exact SKU.")
    ] = None,
    q: Annotated[
        str | None,
        Query(
            max_length=200,
            pattern=TEXT_PATTERN,
            description="Case-insensitive substring of the name.",
        ),
    ] = None,
    in_stock: Annotated[
        bool | None, Query(description="`true`: stock > 0; `false`: stock = 0.")
    ] = None,
) -> Page[ProductPublic]:
    products, total = await database.run(
        catalog.list_products, limit=limit, offset=offset, sku=sku, q=q, in_stock=in_stock
    )
    return Page(
        items=[ProductPublic.of(p) for p in products], total=total, limit=limit, offset=offset
    )


@router.get("/{product_id}", summary="Get a product", responses=problem_responses(404, 422))
async def get_product(
    product_id: ResourceId, database: DatabaseDep, response: Response
) -> ProductPublic:
    return _with_etag(response, await database.run(catalog.get_product, product_id))


async def _update(
    product_id: int,
    body: ProductUpdate,
    database: DatabaseDep,
    response: Response,
    if_match: str | None,
) -> ProductPublic:
    product = await database.run(catalog.update_product, product_id, body, if_match)
    return _with_etag(response, product)


UPDATE_DOC: dict[str, Any] = {
    "description": "Partial update: only the fields sent change (PUT and PATCH behave alike). "
    "Send `If-Match` with the ETag from a GET to refuse the change if someone else changed "
    "the product in the meantime.",
    "responses": problem_responses(404, 409, 412, 422),
}


@router.put("/{product_id}", summary="Update a product", **UPDATE_DOC)
async def put_product(
    product_id: ResourceId,
    body: ProductUpdate,
    database: DatabaseDep,
    response: Response,
    if_match: IfMatch = None,
) -> ProductPublic:
    return await _update(product_id, body, database, response, if_match)


@router.patch("/{product_id}", summary="Update a product (partial)", **UPDATE_DOC)
async def patch_product(
    product_id: ResourceId,
    body: ProductUpdate,
    database: DatabaseDep,
    response: Response,
    if_match: IfMatch = None,
) -> ProductPublic:
    return await _update(product_id, body, database, response, if_match)


@router.delete(
    "/{product_id}",
    status_code=204,
    summary="Archive a product",
    description="The product disappears from every product call and can no longer be ordered; "
    "its SKU is free again, and past orders keep their snapshot of it.",
    responses=problem_responses(404, 422),
)
async def archive_product(product_id: ResourceId, database: DatabaseDep) -> Response:
    await database.run(catalog.archive_product, product_id)
    return Response(status_code=204)
