"""Product endpoints: the catalog over HTTP."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Request, Response

from app import products
from app.core.access import Role
from app.core.errors import problem_responses
from app.core.formats import SKU_PATTERN, TEXT_PATTERN
from app.db.connect import database_of
from app.http.access import admin_only, allow
from app.http.conditional import etag_doc, tagged_response
from app.http.json_payloads import StrictJsonRoute, json_response
from app.http.route_params import After, Limit, Offset, ResourceId, paging
from app.schemas import Page, ProductCreate, ProductPublic, ProductUpdate

# This router's OpenAPI tag (app/routers/__init__.py lists them in the docs' order).
TAG = {"name": "products", "description": "The catalog: create, list, read, update, archive."}
router = APIRouter(prefix="/products", tags=[TAG["name"]], route_class=StrictJsonRoute)

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


@router.post(
    "",
    operation_id="products-create",
    status_code=201,
    summary="Create a product",
    description="Adds a product to the catalog. The SKU must not be used by another live "
    "product; `price` may be sent as a number or a string and is always returned as a string.",
    response_model=ProductPublic,
    responses=problem_responses(409, 422),
)
@admin_only
async def create_product(
    body: Annotated[ProductCreate, Body(openapi_examples=CREATE_EXAMPLES)],
    request: Request,
) -> Response:
    product = await database_of(request).write(products.create_product, body)
    return tagged_response(request, product, 201, {"Location": f"/products/{product['id']}"})


@router.get(
    "",
    operation_id="products-list",
    summary="List products",
    description="In `sort`'s order (`id` by default; `-` descending; ties by id in the same "
    "direction). Offset paging (`offset`, with `total`) or cursor paging (`after`: the `next` "
    "of an earlier page, under the same sort and filters; `total` and `offset` are then null).",
    response_model=Page[ProductPublic],
    responses=problem_responses(422),
)
@allow(Role.STOREFRONT, Role.FULFILLMENT, Role.READONLY)
async def list_products(
    request: Request,
    limit: Limit = 20,
    offset: Offset = None,
    after: After = None,
    sku: Annotated[
        str | None, Query(max_length=64, pattern=SKU_PATTERN, description="Exact SKU.")
    ] = None,
    q: Annotated[
        str | None,
        Query(
            max_length=200,
            pattern=TEXT_PATTERN,
            description="Case-insensitive substring of the name or the SKU.",
        ),
    ] = None,
    in_stock: Annotated[
        bool | None,
        Query(description="`true`: available > 0; `false`: available ≤ 0."),
    ] = None,
    low_stock: Annotated[
        bool | None,
        Query(
            description="`true`: products with a `low_stock_threshold` and `available` below "
            "it; `false`: the others."
        ),
    ] = None,
    sort: Annotated[
        products.ProductSort,  # type: ignore[valid-type]
        Query(description="`id`, `name`, `price`, `available` or `updated_at`; `-` descending."),
    ] = products.DEFAULT_SORT.value,
) -> Response:
    offset, after = paging(offset, after)
    database = database_of(request)
    # A count or a name scan costs O(rows): `scan` keeps it off the event loop (SQLite).
    run = database.read if after is not None and not q else database.scan
    page = await run(
        products.list_products,
        limit=limit,
        offset=offset,
        after=after,
        sku=sku,
        q=q,
        in_stock=in_stock,
        low_stock=low_stock,
        sort=products.SORTING[sort],
    )
    return json_response(page)


@router.get(
    "/{product_id}",
    operation_id="products-get",
    summary="Get a product",
    description="With its `ETag`; `If-None-Match` naming it answers 304 with no body.",
    response_model=ProductPublic,
    responses={**etag_doc("product"), **problem_responses(404, 422)},
)
@allow(Role.STOREFRONT, Role.FULFILLMENT, Role.READONLY)
async def get_product(product_id: ResourceId, request: Request) -> Response:
    return tagged_response(
        request, await database_of(request).read(products.get_product, product_id)
    )


async def _update(
    product_id: int, body: ProductUpdate, request: Request, if_match: str | None
) -> Response:
    product = await database_of(request).write(products.update_product, product_id, body, if_match)
    return tagged_response(request, product)


UPDATE_DOC: dict[str, Any] = {
    "description": "Partial update: only the fields sent change (PUT and PATCH behave alike). "
    "Send `If-Match` with the ETag from a GET to refuse the change if someone else changed "
    "the product in the meantime.",
    "response_model": ProductPublic,
    "responses": problem_responses(404, 409, 412, 422),
}


@router.put(
    "/{product_id}", operation_id="products-update", summary="Update a product", **UPDATE_DOC
)
@admin_only
async def put_product(
    product_id: ResourceId, body: ProductUpdate, request: Request, if_match: IfMatch = None
) -> Response:
    return await _update(product_id, body, request, if_match)


@router.patch(
    "/{product_id}",
    operation_id="products-patch",
    summary="Update a product (partial)",
    **UPDATE_DOC,
)
@admin_only
async def patch_product(
    product_id: ResourceId, body: ProductUpdate, request: Request, if_match: IfMatch = None
) -> Response:
    return await _update(product_id, body, request, if_match)


@router.delete(
    "/{product_id}",
    operation_id="products-archive",
    status_code=204,
    summary="Archive a product",
    description="The product disappears from every product call and can no longer be ordered; "
    "its SKU is free again, and past orders keep their snapshot of it. Send `If-Match` with "
    "the ETag from a GET to refuse it if the product changed in the meantime.",
    responses=problem_responses(404, 412, 422),
)
@admin_only
async def archive_product(
    product_id: ResourceId, request: Request, if_match: IfMatch = None
) -> Response:
    await database_of(request).write(products.archive_product, product_id, if_match)
    return Response(status_code=204)
