"""Stock endpoints: adjustments (restocking, write-offs) and each product's ledger over HTTP."""

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Request, Response

from app import idempotency, ledger, stock
from app.core.access import Role
from app.core.errors import problem_responses
from app.db.base import Connection
from app.db.connect import DatabaseDep
from app.http.access import allow
from app.http.json_payloads import StrictJsonRoute, created_doc, created_response, json_response
from app.http.route_params import After, Limit, Offset, ResourceId, paging
from app.schemas import Page, StockAdjustmentCreate, StockCountCreate, StockMovementPublic
from app.tables import MovementReason

# This router's OpenAPI tag (app/routers/__init__.py lists them in the docs' order).
TAG = {
    "name": "stock",
    "description": "Restock and write off with adjustments, record stocktakes with counts; "
    "each product's stock ledger.",
}
router = APIRouter(prefix="/products/{product_id}", tags=[TAG["name"]], route_class=StrictJsonRoute)
IDEMPOTENCY_SPACE = "stock-adjustments"
COUNT_IDEMPOTENCY_SPACE = "stock-counts"
IdempotencyKey = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=255,
        description="Makes retries safe: the same key and body within 24 h replay the first "
        "answer instead of recording twice. Keys are scoped by API key, in a key space of "
        "their own per call (a key used for an order is another key).",
    ),
]

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
    operation_id="stock-adjustments-create",
    status_code=201,
    summary="Adjust a product's stock",
    description="Adds `delta` to the stock (negative: takes it away) in one conditional "
    "update, so orders placed at the same moment are never lost, and records it in the "
    "product's ledger with its reason. Refused with 409 if it would take stock below zero. "
    "Prefer this to setting `stock` with PUT/PATCH, an absolute set that erases whatever moved "
    "in between; record a stocktake with a count. See docs/stock.md.",
    response_model=StockMovementPublic,
    responses={
        201: created_doc("movement"),
        **problem_responses(404, 409, 422),
    },
)
@allow(Role.FULFILLMENT)
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
            "answer instead of adjusting twice. Keys are scoped by API key, in a key space of "
            "their own (a key used for an order is another key).",
        ),
    ] = None,
) -> Response:
    if idempotency_key is None:
        answer = idempotency.Answer(201, await database.write(_adjust, product_id, body))
    else:
        answer = await database.write(
            _adjust_once,
            product_id,
            body,
            key=idempotency_key,
            principal=request.scope.get("state", {}).get("principal"),
            ttl=timedelta(hours=request.app.state.settings.idempotency_ttl_hours),
        )
    location = f"/products/{product_id}/stock-movements/{answer.body['id']}"
    return created_response(answer.status_code, answer.body, location, answer.replayed)


async def _adjust(conn: Connection, product_id: int, body: StockAdjustmentCreate) -> Any:
    return ledger.movement_view(await stock.adjust(conn, product_id, body))


async def _adjust_once(
    conn: Connection,
    product_id: int,
    body: StockAdjustmentCreate,
    *,
    key: str,
    principal: str | None,
    ttl: timedelta,
) -> idempotency.Answer:
    async def create(conn: Connection) -> tuple[int, Any]:
        return 201, await _adjust(conn, product_id, body)

    return await idempotency.once(
        conn,
        space=IDEMPOTENCY_SPACE,
        principal=principal,
        key=key,
        # The product is part of the request: the same key for another product is a reuse.
        request={"product_id": product_id, **body.model_dump(mode="json")},
        create=create,
        ttl=ttl,
    )


COUNT_EXAMPLES = {
    "now": {"summary": "Counted just now", "value": {"on_hand": 42, "reference": "STK-2026-12"}},
    "aisle": {
        "summary": "A count with a note (add `counted_at`, at most 7 days ago, for one taken "
        "earlier)",
        "value": {"on_hand": 40, "note": "Aisle 4"},
    },
}


@router.post(
    "/stock-counts",
    operation_id="stock-counts-create",
    status_code=201,
    summary="Record a stock count",
    description="Says how many units were on the shelf at `counted_at` (default now; at most 7 "
    "days ago, never in the future). `on_hand` becomes that number plus the `on_hand` changes "
    "recorded after `counted_at` (shipments, receipts, returns), so a count posted hours later "
    "is still exact. Answers the `counted` movement (its `on_hand_delta` is the correction; a "
    "count that corrects nothing is recorded too). A count taken before the product's newest "
    "count is 409 `count_too_old`. See docs/stock.md.",
    response_model=StockMovementPublic,
    responses={201: created_doc("movement"), **problem_responses(404, 409, 422)},
)
@allow(Role.FULFILLMENT)
async def create_count(
    product_id: ResourceId,
    body: Annotated[StockCountCreate, Body(openapi_examples=COUNT_EXAMPLES)],
    database: DatabaseDep,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    if idempotency_key is None:
        answer = idempotency.Answer(201, await database.write(_count, product_id, body))
    else:
        answer = await database.write(
            _count_once,
            product_id,
            body,
            key=idempotency_key,
            principal=request.scope.get("state", {}).get("principal"),
            ttl=timedelta(hours=request.app.state.settings.idempotency_ttl_hours),
        )
    location = f"/products/{product_id}/stock-movements/{answer.body['id']}"
    return created_response(answer.status_code, answer.body, location, answer.replayed)


async def _count(conn: Connection, product_id: int, body: StockCountCreate) -> Any:
    return ledger.movement_view(await stock.count(conn, product_id, body))


async def _count_once(
    conn: Connection,
    product_id: int,
    body: StockCountCreate,
    *,
    key: str,
    principal: str | None,
    ttl: timedelta,
) -> idempotency.Answer:
    async def create(conn: Connection) -> tuple[int, Any]:
        return 201, await _count(conn, product_id, body)

    return await idempotency.once(
        conn,
        space=COUNT_IDEMPOTENCY_SPACE,
        principal=principal,
        key=key,
        request={"product_id": product_id, **body.model_dump(mode="json")},
        create=create,
        ttl=ttl,
    )


@router.get(
    "/stock-movements",
    operation_id="stock-movements-list",
    summary="A product's stock movements, newest first",
    description="Every change of the product's stock, with its reason: stock is the sum of the "
    "deltas, and the newest movement's `stock_after` is the stock. Offset paging (`offset`, "
    "with `total`) or cursor paging (`after`: the `next` of an earlier page; `total` and "
    "`offset` are then null, and a page costs the same however long the history grows).",
    response_model=Page[StockMovementPublic],
    responses=problem_responses(404, 422),
)
@allow(Role.FULFILLMENT, Role.READONLY)
async def list_movements(
    product_id: ResourceId,
    database: DatabaseDep,
    limit: Limit = 20,
    offset: Offset = None,
    after: After = None,
    reason: Annotated[
        list[MovementReason] | None,
        Query(description="Only movements with this reason; may repeat."),
    ] = None,
) -> Response:
    offset, after = paging(offset, after)
    # The count behind `total` costs O(movements): `scan` keeps it off the event loop (SQLite).
    run = database.read if after is not None else database.scan
    page = await run(
        stock.list_movements, product_id, limit=limit, offset=offset, after=after, reasons=reason
    )
    return json_response(page)


@router.get(
    "/stock-movements/{movement_id}",
    operation_id="products-stock-movements-get",
    summary="One stock movement",
    response_model=StockMovementPublic,
    responses=problem_responses(404, 422),
)
@allow(Role.FULFILLMENT, Role.READONLY)
async def get_movement(
    product_id: ResourceId, movement_id: ResourceId, database: DatabaseDep
) -> Response:
    return json_response(await database.read(stock.get_movement, product_id, movement_id))
