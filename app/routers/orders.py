"""Order endpoints: placing orders and moving their status over HTTP."""

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Request
from fastapi.responses import JSONResponse

from app import idempotency
from app import orders as order_rules
from app.database import DatabaseDep
from app.errors import problem_responses
from app.routers.params import Limit, Offset, ResourceId
from app.schemas import OrderCreate, OrderPublic, OrderStatusUpdate, Page
from app.tables import OrderStatus
from app.types import MAX_ID

router = APIRouter(prefix="/orders", tags=["orders"])

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
    status_code=201,
    summary="Place an order",
    description="Reserves stock for every line in one transaction, all or nothing: if any "
    "line cannot be served (unknown or archived product, not enough stock) nothing changes. "
    "Each line snapshots the product's SKU, name and price. Send either `items` (1–50 lines, "
    "each product at most once, quantity 1–10000) or one line's `product_id` and `quantity`.",
    response_model=OrderPublic,
    responses={
        201: {
            "description": "The order, placed (or replayed for a repeated Idempotency-Key).",
            "headers": {
                "Location": {"schema": {"type": "string"}, "description": "The order's URL."},
                "Idempotent-Replayed": {
                    "schema": {"type": "string", "enum": ["true"]},
                    "description": "Present on a replayed answer.",
                },
            },
        },
        **problem_responses(404, 409, 422),
    },
)
async def create_order(
    body: Annotated[OrderCreate, Body(openapi_examples=CREATE_EXAMPLES)],
    database: DatabaseDep,
    request: Request,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=255,
            description="Makes retries safe: the same key and body within 24 h replay the first "
            "answer instead of placing a second order.",
        ),
    ] = None,
) -> JSONResponse:
    if idempotency_key is None:
        answer = idempotency.OrderAnswer.created(await database.run(order_rules.place_order, body))
    else:
        ttl = timedelta(hours=request.app.state.settings.idempotency_ttl_hours)
        answer = await database.run(idempotency.place_order_once, idempotency_key, body, ttl)
    headers = {"Location": f"/orders/{answer.body['id']}"}
    if answer.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(answer.body, status_code=answer.status_code, headers=headers)


@router.get("", summary="List orders, newest first", responses=problem_responses(422))
async def list_orders(
    database: DatabaseDep,
    limit: Limit = 20,
    offset: Offset = 0,
    status: Annotated[OrderStatus | None, Query(description="Only orders in this status.")] = None,
    product_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Only orders with a line for this product.")
    ] = None,
) -> Page[OrderPublic]:
    orders, total = await database.run(
        order_rules.list_orders, limit=limit, offset=offset, status=status, product_id=product_id
    )
    return Page(items=[OrderPublic.of(o) for o in orders], total=total, limit=limit, offset=offset)


@router.get("/{order_id}", summary="Get an order", responses=problem_responses(404, 422))
async def get_order(order_id: ResourceId, database: DatabaseDep) -> OrderPublic:
    return OrderPublic.of(await database.run(order_rules.get_order, order_id))


STATUS_DOC: dict[str, Any] = {
    "description": "Moves the order along `PENDING → PAID → SHIPPED`, or to `CANCELED` from "
    "`PENDING` or `PAID` (stock is returned). Setting the current status again is a no-op.",
    "responses": problem_responses(404, 409, 422),
}


@router.put("/{order_id}", summary="Change an order's status", **STATUS_DOC)
async def put_order(
    order_id: ResourceId, body: OrderStatusUpdate, database: DatabaseDep
) -> OrderPublic:
    return OrderPublic.of(await database.run(order_rules.change_status, order_id, body.status))


@router.patch("/{order_id}", summary="Change an order's status (PATCH)", **STATUS_DOC)
async def patch_order(
    order_id: ResourceId, body: OrderStatusUpdate, database: DatabaseDep
) -> OrderPublic:
    return OrderPublic.of(await database.run(order_rules.change_status, order_id, body.status))


@router.delete(
    "/{order_id}",
    summary="Cancel an order",
    description="A soft cancel: the order stays, now `CANCELED`, and its quantities return to "
    "stock exactly once. Cancelling a canceled order is a no-op; a shipped one is 409.",
    responses=problem_responses(404, 409, 422),
)
async def cancel_order(order_id: ResourceId, database: DatabaseDep) -> OrderPublic:
    canceled = await database.run(order_rules.change_status, order_id, OrderStatus.CANCELED)
    return OrderPublic.of(canceled)
