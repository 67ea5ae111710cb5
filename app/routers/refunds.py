"""Refund endpoints: money given back on an order, and the units it covers, over HTTP."""

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Request, Response

from app import idempotency, refunds
from app.core.access import Role
from app.core.errors import problem_responses
from app.db.base import Connection
from app.db.connect import database_of
from app.http.access import admin_only, allow
from app.http.conditional import etag_doc, tagged_response
from app.http.json_payloads import StrictJsonRoute, created_doc, created_response, json_response
from app.http.route_params import After, Limit, Offset, ResourceId, paging
from app.schemas import Page, RefundCreate, RefundPublic

# This router's OpenAPI tag (app/routers/__init__.py lists them in the docs' order).
TAG = {
    "name": "refunds",
    "description": "Give money back on a paid order, with the units it covers: unshipped units "
    "are released, shipped ones return to the shelf.",
}
router = APIRouter(
    prefix="/orders/{order_id}/refunds", tags=[TAG["name"]], route_class=StrictJsonRoute
)
IDEMPOTENCY_SPACE = "refunds"

CREATE_EXAMPLES = {
    "items": {
        "summary": "Two units returned by the customer",
        "value": {
            "items": [{"product_id": 1, "quantity": 2}],
            "reason": "requested_by_customer",
            "provider_refund_id": "re_3PqR8s2eZvKYlo2C0abcdEfG",
        },
    },
    "amount": {
        "summary": "A goodwill amount, no units",
        "value": {"amount": "5.00", "reason": "other", "note": "Late delivery"},
    },
    "damaged": {
        "summary": "Damaged goods: refunded, not restocked",
        "value": {
            "items": [{"product_id": 1, "quantity": 1, "restock": "none"}],
            "reason": "damaged",
        },
    },
}


@router.post(
    "",
    operation_id="refunds-create",
    status_code=201,
    summary="Refund an order",
    description="Records money given back (at most what was paid and not yet refunded, even "
    "under concurrent refunds) and, with `items`, the units it covers: with `restock` `auto` "
    "unshipped units are released first, then shipped units return to the shelf; `none` moves "
    "no quantity. When the last unshipped units are released, a PAID order that shipped "
    "nothing becomes CANCELED (`refunded`), a PARTIALLY_SHIPPED one SHIPPED. A "
    "`provider_refund_id` already recorded (by this call or the payment webhook) answers 200 "
    "with that refund and `Idempotent-Replayed: true`. See docs/refunds.md.",
    response_model=RefundPublic,
    responses={
        200: {"description": "The refund with this `provider_refund_id`, recorded before."},
        201: created_doc("refund"),
        **problem_responses(404, 409, 422),
    },
)
@admin_only
async def create_refund(
    order_id: ResourceId,
    body: Annotated[RefundCreate, Body(openapi_examples=CREATE_EXAMPLES)],
    request: Request,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=255,
            description="Makes retries safe: the same key and body within 24 h replay the first "
            "answer instead of refunding twice. Keys are scoped by API key, in a key space of "
            "their own.",
        ),
    ] = None,
) -> Response:
    database = database_of(request)
    try:
        if idempotency_key is None:
            recorded = await database.write(refunds.create_refund, order_id, body)
            answer = idempotency.Answer(
                200 if recorded.replayed else 201, recorded.refund, recorded.replayed
            )
        else:
            answer = await database.write(
                _refund_once,
                order_id,
                body,
                key=idempotency_key,
                principal=request.scope.get("state", {}).get("principal"),
                ttl=timedelta(hours=request.app.state.settings.idempotency_ttl_hours),
            )
    except refunds.AlreadyRecorded as repeat:
        answer = idempotency.Answer(200, repeat.recorded.refund, True)
    refund = answer.body
    location = f"/orders/{refund['order_id']}/refunds/{refund['id']}"
    # A 200 is a refund recorded before, under its provider refund id: a replay too.
    replayed = answer.replayed or answer.status_code == 200
    return created_response(answer.status_code, refund, location, replayed)


async def _refund_once(
    conn: Connection,
    order_id: int,
    body: RefundCreate,
    *,
    key: str,
    principal: str | None,
    ttl: timedelta,
) -> idempotency.Answer:
    async def create(conn: Connection) -> tuple[int, Any]:
        recorded = await refunds.create_refund(conn, order_id, body)
        return (200 if recorded.replayed else 201), recorded.refund

    return await idempotency.once(
        conn,
        space=IDEMPOTENCY_SPACE,
        principal=principal,
        key=key,
        request={"order_id": order_id, **body.model_dump(mode="json")},
        create=create,
        ttl=ttl,
    )


@router.get(
    "",
    operation_id="refunds-list",
    summary="An order's refunds, oldest first",
    response_model=Page[RefundPublic],
    responses=problem_responses(404, 422),
)
@allow(Role.FULFILLMENT, Role.READONLY)
async def list_refunds(
    order_id: ResourceId,
    request: Request,
    limit: Limit = 20,
    offset: Offset = None,
    after: After = None,
) -> Response:
    offset, after = paging(offset, after)
    page = await database_of(request).read(
        refunds.list_refunds, order_id, limit=limit, offset=offset, after=after
    )
    return json_response(page)


@router.get(
    "/{refund_id}",
    operation_id="refunds-get",
    summary="One refund",
    response_model=RefundPublic,
    responses={**etag_doc("refund"), **problem_responses(404, 422)},
)
@allow(Role.FULFILLMENT, Role.READONLY)
async def get_refund(order_id: ResourceId, refund_id: ResourceId, request: Request) -> Response:
    return tagged_response(
        request, await database_of(request).read(refunds.get_refund, order_id, refund_id)
    )
