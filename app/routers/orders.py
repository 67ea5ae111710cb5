"""Order endpoints: placing orders and moving their status over HTTP."""

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Request, Response

from app import idempotency, order_changes, orders
from app.core.access import Role
from app.core.errors import problem_responses
from app.core.formats import MAX_ID, ExternalId, Rfc3339
from app.db.base import Connection
from app.db.connect import database_of
from app.http.access import admin_only, allow
from app.http.conditional import etag_doc, tagged_response
from app.http.json_payloads import StrictJsonRoute, created_doc, created_response, json_response
from app.http.route_params import After, Limit, Offset, ResourceId, paging
from app.schemas import OrderCreate, OrderPublic, OrderUpdate, Page
from app.tables import OrderStatus, PaymentStatus

# This router's OpenAPI tag (app/routers/__init__.py lists them in the docs' order).
TAG = {
    "name": "orders",
    "description": "Place orders (stock is reserved), move their status, "
    "cancel (stock is returned).",
}
router = APIRouter(prefix="/orders", tags=[TAG["name"]], route_class=StrictJsonRoute)
IDEMPOTENCY_SPACE = "orders"

CREATE_EXAMPLES = {
    "several lines": {
        "summary": "An order of several products",
        "value": {"items": [{"product_id": 1, "quantity": 2}, {"product_id": 2, "quantity": 1}]},
    },
    "one line": {
        "summary": "One-line shorthand",
        "value": {"product_id": 1, "quantity": 2},
    },
}


@router.post(
    "",
    operation_id="orders-create",
    status_code=201,
    summary="Place an order",
    description="Reserves stock for every line in one transaction, all or nothing: if any "
    "line cannot be served (unknown or archived product, not enough stock) nothing changes. "
    "Each line snapshots the product's SKU, name and price. Send either `items` (1–50 lines, "
    "each product at most once, quantity 1–10000) or one line's `product_id` and `quantity`.",
    response_model=OrderPublic,
    responses={
        201: created_doc("order"),
        **problem_responses(404, 409, 422),
    },
)
@allow(Role.STOREFRONT)
async def create_order(
    body: Annotated[OrderCreate, Body(openapi_examples=CREATE_EXAMPLES)],
    request: Request,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=255,
            description="Makes retries safe: the same key and body within 24 h replay the first "
            "answer instead of placing a second order. Keys are scoped by API key.",
        ),
    ] = None,
) -> Response:
    database = database_of(request)
    window = request.app.state.settings.payment_window
    if idempotency_key is None:
        placed = await database.write(orders.place_order, body, payment_window=window)
        answer = idempotency.Answer(201, placed)
    else:
        answer = await database.write(
            _place_once,
            body,
            window,
            key=idempotency_key,
            principal=request.scope.get("state", {}).get("principal"),
            ttl=timedelta(hours=request.app.state.settings.idempotency_ttl_hours),
        )
    location = f"/orders/{answer.body['id']}"
    return created_response(answer.status_code, answer.body, location, answer.replayed)


async def _place_once(
    conn: Connection,
    body: OrderCreate,
    window: timedelta | None,
    *,
    key: str,
    principal: str | None,
    ttl: timedelta,
) -> idempotency.Answer:
    async def place(conn: Connection) -> tuple[int, Any]:
        return 201, await orders.place_order(conn, body, payment_window=window)

    return await idempotency.once(
        conn,
        space=IDEMPOTENCY_SPACE,
        principal=principal,
        key=key,
        # The fields sent, so a body of earlier clients (lines only) keeps its fingerprint.
        request=body.model_dump(mode="json", exclude_unset=True),
        create=place,
        ttl=ttl,
    )


@router.get(
    "",
    operation_id="orders-list",
    summary="List orders, newest first",
    description="In `sort`'s order (`-created_at` by default: newest first; ties by id in the "
    "same direction). Offset paging (`offset`, with `total`) or cursor paging (`after`: the "
    "`next` of an earlier page, under the same sort and filters; `total` and `offset` are "
    "then null, and a page costs the same at any size of the table).",
    response_model=Page[OrderPublic],
    responses=problem_responses(422),
)
# A storefront reads the orders it placed by id; listing every shop order is not its job.
@allow(Role.FULFILLMENT, Role.READONLY)
async def list_orders(
    request: Request,
    limit: Limit = 20,
    offset: Offset = None,
    after: After = None,
    status: Annotated[
        list[OrderStatus] | None,
        Query(description="Only orders in this status (repeat it for any of several)."),
    ] = None,
    product_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Only orders with a line for this product.")
    ] = None,
    created_after: Annotated[
        Rfc3339 | None, Query(description="Only orders created at or after this time.")
    ] = None,
    created_before: Annotated[
        Rfc3339 | None, Query(description="Only orders created before this time.")
    ] = None,
    external_id: Annotated[
        ExternalId | None, Query(description="Only the order with this external_id.")
    ] = None,
    customer_email: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=254,
            # Text a database can store: PostgreSQL refuses a NUL byte (it answered 500).
            pattern=r"^[^\x00]*$",
            description="Only orders of the customer with this e-mail (case does not matter).",
        ),
    ] = None,
    payment_status: Annotated[
        list[PaymentStatus] | None,
        Query(description="Only orders whose payment is in this state (may repeat)."),
    ] = None,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=254,
            # Text a database can store: PostgreSQL refuses a NUL byte (it answered 500).
            pattern=r"^[^\x00]*$",
            description="An order id, an external_id or a customer e-mail, matched exactly.",
        ),
    ] = None,
    sort: Annotated[
        orders.OrderSort,  # type: ignore[valid-type]
        Query(description="`created_at`, `total` or `updated_at`; `-` descending."),
    ] = orders.DEFAULT_SORT.value,
) -> Response:
    offset, after = paging(offset, after)
    database = database_of(request)
    # The count behind `total` costs O(rows): `scan` keeps it off the event loop (SQLite).
    run = database.read if after is not None else database.scan
    page = await run(
        orders.list_orders,
        limit=limit,
        offset=offset,
        after=after,
        status=status,
        product_id=product_id,
        created_after=created_after,
        created_before=created_before,
        external_id=external_id,
        customer_email=customer_email,
        payment_status=payment_status,
        q=q,
        sort=orders.SORTING[sort],
    )
    return json_response(page)


@router.get(
    "/{order_id}",
    operation_id="orders-get",
    summary="Get an order",
    description="With its `ETag`; `If-None-Match` naming it answers 304 with no body.",
    response_model=OrderPublic,
    responses={**etag_doc("order"), **problem_responses(404, 422)},
)
@allow(Role.STOREFRONT, Role.FULFILLMENT, Role.READONLY)
async def get_order(order_id: ResourceId, request: Request) -> Response:
    return tagged_response(request, await database_of(request).read(orders.order_view, order_id))


IfMatch = Annotated[
    str | None,
    Header(description="Apply the change only if the order's current ETag is one of these."),
]


async def _update(
    request: Request, order_id: int, change: OrderUpdate, if_match: str | None
) -> Response:
    updated = await database_of(request).write(
        order_changes.update_order, order_id, change, if_match=if_match
    )
    return tagged_response(request, updated)


STATUS_DOC: dict[str, Any] = {
    "description": "`status` moves the order along `PENDING → PAID → SHIPPED`, or to "
    "`CANCELED` from `PENDING` or `PAID` (its unshipped units are released). A move to "
    "`SHIPPED` ships every unit that remains (as `POST /orders/{id}/shipments` without items); "
    "`PARTIALLY_SHIPPED` is reached only by a shipment. Setting the current status again is a "
    "no-op. `metadata` is merged into the order's: a key set to null is removed, and the "
    "result holds at most 50 keys (else 422); a change records `order.updated`. Send either "
    "or both, nothing else. Send `If-Match` with the ETag from a GET to refuse the change if "
    "the order changed in the meantime.",
    "response_model": OrderPublic,
    "responses": problem_responses(404, 409, 412, 422),
}


@router.put(
    "/{order_id}",
    operation_id="orders-update",
    summary="Change an order's status or metadata",
    **STATUS_DOC,
)
@admin_only
async def put_order(
    order_id: ResourceId, body: OrderUpdate, request: Request, if_match: IfMatch = None
) -> Response:
    return await _update(request, order_id, body, if_match)


@router.patch(
    "/{order_id}",
    operation_id="orders-patch",
    summary="Change an order's status or metadata (PATCH)",
    **STATUS_DOC,
)
@admin_only
async def patch_order(
    order_id: ResourceId, body: OrderUpdate, request: Request, if_match: IfMatch = None
) -> Response:
    return await _update(request, order_id, body, if_match)


@router.delete(
    "/{order_id}",
    operation_id="orders-cancel",
    summary="Cancel an order",
    description="A soft cancel: the order stays, now `CANCELED`, and its unshipped units are "
    "released (available again) exactly once. Cancelling a canceled order is a no-op; a "
    "shipped or partly shipped one is 409. Honours `If-Match` as PUT does.",
    response_model=OrderPublic,
    responses=problem_responses(404, 409, 412, 422),
)
@allow(Role.STOREFRONT)
async def cancel_order(
    order_id: ResourceId, request: Request, if_match: IfMatch = None
) -> Response:
    return await _update(request, order_id, OrderUpdate(status=OrderStatus.CANCELED), if_match)
