"""Shipment endpoints: goods leaving the shelf for an order, over HTTP."""

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Request, Response

from app import idempotency, shipments
from app.core.access import Role
from app.core.errors import problem_responses
from app.db.base import Connection
from app.db.connect import database_of
from app.http.access import allow
from app.http.conditional import etag_doc, tagged_response
from app.http.json_payloads import StrictJsonRoute, created_doc, created_response, json_response
from app.http.route_params import After, Limit, Offset, ResourceId, paging
from app.schemas import Page, ShipmentCreate, ShipmentPublic

# This router's OpenAPI tag (app/routers/__init__.py lists them in the docs' order).
TAG = {
    "name": "shipments",
    "description": "Ship an order's units, whole or in part, with tracking: on hand and "
    "committed fall together.",
}
router = APIRouter(
    prefix="/orders/{order_id}/shipments", tags=[TAG["name"]], route_class=StrictJsonRoute
)
IDEMPOTENCY_SPACE = "shipments"

CREATE_EXAMPLES = {
    "everything": {
        "summary": "Every unit that remains",
        "value": {"carrier": "UPS", "tracking_number": "1Z999AA10123456784"},
    },
    "part": {
        "summary": "Part of the order",
        "value": {
            "items": [{"product_id": 1, "quantity": 1}],
            "carrier": "DHL",
            "tracking_number": "JD014600006281230704",
            "tracking_url": "https://www.dhl.com/track?id=JD014600006281230704",
        },
    },
}


@router.post(
    "",
    operation_id="shipments-create",
    status_code=201,
    summary="Ship an order's units",
    description="Ships units of a `PAID` or `PARTIALLY_SHIPPED` order (without `items`, every "
    "unit that remains): in one transaction each product's `on_hand` and `committed` fall by "
    "the units shipped (a `shipped` movement), and the order becomes `SHIPPED` when nothing "
    "remains to ship, else `PARTIALLY_SHIPPED`. Concurrent shipments of one order never ship "
    "a unit twice. See docs/stock.md.",
    response_model=ShipmentPublic,
    responses={201: created_doc("shipment"), **problem_responses(404, 409, 422)},
)
@allow(Role.FULFILLMENT)
async def create_shipment(
    order_id: ResourceId,
    body: Annotated[ShipmentCreate, Body(openapi_examples=CREATE_EXAMPLES)],
    request: Request,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=255,
            description="Makes retries safe: the same key and body within 24 h replay the first "
            "answer instead of shipping twice. Keys are scoped by API key, in a key space of "
            "their own.",
        ),
    ] = None,
) -> Response:
    database = database_of(request)
    if idempotency_key is None:
        shipment = await database.write(shipments.create_shipment, order_id, body)
        answer = idempotency.Answer(201, shipment)
    else:
        answer = await database.write(
            _ship_once,
            order_id,
            body,
            key=idempotency_key,
            principal=request.scope.get("state", {}).get("principal"),
            ttl=timedelta(hours=request.app.state.settings.idempotency_ttl_hours),
        )
    location = f"/orders/{order_id}/shipments/{answer.body['id']}"
    return created_response(answer.status_code, answer.body, location, answer.replayed)


async def _ship_once(
    conn: Connection,
    order_id: int,
    body: ShipmentCreate,
    *,
    key: str,
    principal: str | None,
    ttl: timedelta,
) -> idempotency.Answer:
    async def create(conn: Connection) -> tuple[int, Any]:
        return 201, await shipments.create_shipment(conn, order_id, body)

    return await idempotency.once(
        conn,
        space=IDEMPOTENCY_SPACE,
        principal=principal,
        key=key,
        # The order is part of the request: the same key for another order is a reuse.
        request={"order_id": order_id, **body.model_dump(mode="json")},
        create=create,
        ttl=ttl,
    )


@router.get(
    "",
    operation_id="shipments-list",
    summary="An order's shipments, oldest first",
    response_model=Page[ShipmentPublic],
    responses=problem_responses(404, 422),
)
@allow(Role.FULFILLMENT, Role.READONLY)
async def list_shipments(
    order_id: ResourceId,
    request: Request,
    limit: Limit = 20,
    offset: Offset = None,
    after: After = None,
) -> Response:
    offset, after = paging(offset, after)
    page = await database_of(request).read(
        shipments.list_shipments, order_id, limit=limit, offset=offset, after=after
    )
    return json_response(page)


@router.get(
    "/{shipment_id}",
    operation_id="shipments-get",
    summary="One shipment",
    response_model=ShipmentPublic,
    responses={**etag_doc("shipment"), **problem_responses(404, 422)},
)
@allow(Role.FULFILLMENT, Role.READONLY)
async def get_shipment(order_id: ResourceId, shipment_id: ResourceId, request: Request) -> Response:
    return tagged_response(
        request, await database_of(request).read(shipments.get_shipment, order_id, shipment_id)
    )
