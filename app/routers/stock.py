"""Stock endpoints: adjustments (restocking, write-offs) and each product's ledger over HTTP."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Request
from fastapi.responses import JSONResponse

from app import cursors, idempotency, stock
from app.database import DatabaseDep
from app.errors import problem_responses
from app.routers.params import Limit, Offset, ResourceId
from app.schemas import StockAdjustmentCreate, StockMovementPublic

router = APIRouter(prefix="/products/{product_id}", tags=["stock"])
CURSOR_KIND = "stock-movements"

ADJUSTMENT_EXAMPLES = {
    "delivery": {
        "summary": "A delivery received",
        "value": {"delta": 50, "reason": "received", "reference": "PO-2026-1142"},
    },
    "write-off": {
        "summary": "Units found damaged",
        "value": {"delta": -2, "reason": "damaged", "note": "Dropped in the warehouse"},
    },
}


@router.post(
    "/stock-adjustments",
    status_code=201,
    summary="Adjust a product's stock",
    description="Adds `delta` to the stock (negative: takes it away) in one conditional "
    "update, so orders placed at the same moment are never lost, and records it in the "
    "product's ledger with its reason. Refused with 409 if it would take stock below zero. "
    "Prefer this to setting `stock` with PUT/PATCH, which erases whatever moved in between.",
    response_model=StockMovementPublic,
    responses={
        201: {
            "description": "The movement recorded (or replayed for a repeated Idempotency-Key).",
            "headers": {
                "Location": {"schema": {"type": "string"}, "description": "The movement's URL."},
                "Idempotent-Replayed": {
                    "schema": {"type": "string", "enum": ["true"]},
                    "description": "Present on a replayed answer.",
                },
            },
        },
        **problem_responses(404, 409, 422),
    },
)
async def create_adjustment(
    product_id: ResourceId,
    body: Annotated[StockAdjustmentCreate, Body(openapi_examples=ADJUSTMENT_EXAMPLES)],
    database: DatabaseDep,
    request: Request,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=255,
            description="Makes retries safe: the same key and body within 24 h replay the first "
            "answer instead of adjusting twice. A key space of its own (not shared with orders).",
        ),
    ] = None,
) -> JSONResponse:
    async def create(conn: Any) -> tuple[int, dict[str, Any]]:
        movement = await stock.adjust(conn, product_id, body)
        return 201, StockMovementPublic.model_validate(movement).model_dump(mode="json")

    answer = await idempotency.run_once(
        database,
        request,
        space="stock-adjustments",
        key=idempotency_key,
        request_body={"product_id": product_id, **body.model_dump(mode="json")},
        create=create,
    )
    headers = {"Location": f"/products/{product_id}/stock-movements/{answer.body['id']}"}
    if answer.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(answer.body, status_code=answer.status_code, headers=headers)


@router.get(
    "/stock-movements",
    summary="A product's stock movements, newest first",
    description="Every change of the product's stock with its reason: stock is the sum of "
    "the deltas, and the newest movement's `stock_after` is the stock. Page with `offset`, or "
    "with `after` (a `next` from an earlier page) for pages that cost the same however long "
    "the history grows.",
    responses=problem_responses(404, 422),
)
async def list_movements(
    product_id: ResourceId,
    database: DatabaseDep,
    limit: Limit = 20,
    offset: Offset | None = None,
    after: Annotated[
        str | None, Query(max_length=200, description="A `next` cursor from an earlier page.")
    ] = None,
) -> dict[str, Any]:
    if after is not None and offset is not None:
        raise cursors.both_offset_and_after()
    position = None if after is None else cursors.decode_id(CURSOR_KIND, after)
    rows, total, last = await database.read(
        stock.list_movements, product_id, limit=limit, offset=offset or 0, after=position
    )
    return {
        "items": [StockMovementPublic.model_validate(row).model_dump(mode="json") for row in rows],
        "total": total,
        "limit": limit,
        "offset": None if after is not None else offset or 0,
        "next": None if last is None else cursors.encode(CURSOR_KIND, last),
    }


@router.get(
    "/stock-movements/{movement_id}",
    summary="One stock movement",
    responses=problem_responses(404, 422),
)
async def get_movement(
    product_id: ResourceId, movement_id: ResourceId, database: DatabaseDep
) -> StockMovementPublic:
    return StockMovementPublic.model_validate(
        await database.read(stock.get_movement, product_id, movement_id)
    )
