"""Event endpoints: the pull feed, and push subscriptions with their delivery log."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from app.core import cursors
from app.core.access import Role
from app.core.errors import ApiError, problem_responses
from app.db.connect import DatabaseDep
from app.events import outbox, ping, subscriptions, url_safety
from app.events.schemas import (
    CursorPage,
    DeliveryPublic,
    EventPublic,
    PingResult,
    SecretRotated,
    SecretRotation,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionPublic,
    SubscriptionUpdate,
)
from app.http.access import admin_only, allow
from app.http.json_payloads import StrictJsonRoute
from app.http.route_params import Limit, Offset, ResourceId
from app.tables import EventType

# This router's OpenAPI tag (app/routers/__init__.py lists them in the docs' order).
TAG = {
    "name": "events",
    "description": "What happened, for other systems: the event feed (cursor-paged, never "
    "misses an event) and push subscriptions with signed deliveries (docs/events.md).",
}
router = APIRouter(tags=[TAG["name"]], route_class=StrictJsonRoute)
SUBSCRIPTIONS, DELIVERIES = "subscriptions", "deliveries"
# As the other lists' (app/http/route_params.py): an empty or overlong cursor is invalid_cursor.
After = Annotated[str | None, Query(description="A `next` value from an earlier page.")]
DeliveryId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The delivery's id.")]


def envelope(items: list[Any], limit: int, next_: str | None, **window: Any) -> dict[str, Any]:
    return {
        "items": items,
        "total": window.get("total"),
        "limit": limit,
        "offset": window.get("offset"),
        "next": next_,
    }


@router.get(
    "/events",
    operation_id="events-list",
    summary="The event feed, oldest first",
    description="Pages through events oldest first. Keep the `next` of each page and send it "
    "as `after` on the next call: `next` is never null, and on the last page (even an empty "
    "one) it is where to poll from. Paging this way sees every event exactly once and in "
    "order, even while other transactions commit. Filter with `type` (may repeat).",
    response_model=CursorPage[EventPublic],
    responses=problem_responses(422),
)
@allow(Role.READONLY)
async def list_events(
    database: DatabaseDep,
    limit: Limit = 20,
    after: After = None,
    type: Annotated[list[EventType] | None, Query(description="Only these types.")] = None,
) -> JSONResponse:
    position = outbox.START if after is None else outbox.decode_cursor(outbox.FEED, after, 2)
    items, last = await database.read(
        outbox.feed, after=(position[0], position[1]), types=type or [], limit=limit
    )
    return JSONResponse(envelope(items, limit, outbox.encode_cursor(outbox.FEED, *last)))


async def check_url(request: Request, url: str) -> None:
    """422 url_not_allowed unless `url` is public http(s) (or private ones are allowed)."""
    settings = request.app.state.settings
    try:
        await url_safety.check(url, allow_private=settings.event_allow_private_urls)
    except url_safety.UrlNotAllowed as error:
        raise ApiError("url_not_allowed", str(error), url=url) from None


@router.post(
    "/event-subscriptions",
    operation_id="event-subscriptions-create",
    status_code=201,
    summary="Subscribe a URL to events",
    description="Each event created from now on whose type matches is POSTed to `url`, signed "
    "the Standard Webhooks way with `secret`, which this answer alone shows: keep it. The URL "
    "must be http(s) and resolve to public addresses (422 `url_not_allowed`).",
    response_model=SubscriptionCreated,
    responses=problem_responses(422),
)
@admin_only
async def create_subscription(
    body: SubscriptionCreate, database: DatabaseDep, request: Request
) -> JSONResponse:
    await check_url(request, body.url)
    created = await database.write(
        subscriptions.create, url=body.url, types=body.types, description=body.description
    )
    location = f"/event-subscriptions/{created['id']}"
    return JSONResponse(created, status_code=201, headers={"Location": location})


@router.get(
    "/event-subscriptions",
    operation_id="event-subscriptions-list",
    summary="List subscriptions",
    response_model=CursorPage[SubscriptionPublic],
    responses=problem_responses(422),
)
@allow(Role.READONLY)
async def list_subscriptions(
    database: DatabaseDep, limit: Limit = 20, offset: Offset | None = None, after: After = None
) -> JSONResponse:
    if after is not None and offset is not None:
        raise ApiError(
"validation_error", "Send `after` or `offset`, not both.",
            errors=[{"loc": ["query", "offset"], "msg": "offset and after exclude each other",
                     "type": "value_error"}],
        )  # fmt: skip
    cursor = None if after is None else cursors.decode_id(SUBSCRIPTIONS, after)
    items, total = await database.read(
        subscriptions.page, limit=limit + 1, offset=offset or 0, after=cursor
    )
    more, items = len(items) > limit, items[:limit]
    next_ = cursors.encode(SUBSCRIPTIONS, items[-1]["id"]) if more else None
    window = {} if cursor is not None else {"total": total, "offset": offset or 0}
    return JSONResponse(envelope(items, limit, next_, **window))


@router.get(
    "/event-subscriptions/{subscription_id}",
    operation_id="event-subscriptions-get",
    summary="Get a subscription",
    response_model=SubscriptionPublic,
    responses=problem_responses(404, 422),
)
@allow(Role.READONLY)
async def get_subscription(subscription_id: ResourceId, database: DatabaseDep) -> JSONResponse:
    return JSONResponse(await database.read(subscriptions.get, subscription_id))


@router.patch(
    "/event-subscriptions/{subscription_id}",
    operation_id="event-subscriptions-update",
    summary="Change a subscription, or pause it",
    description="Only the fields sent change. `enabled: false` pauses it: nothing is sent to it, "
    "no delivery is queued for the events recorded meanwhile, and its pending deliveries wait "
    "until `enabled: true`. A new `url` is checked as at creation (422 `url_not_allowed`); "
    "new `types` apply to events recorded from then on.",
    response_model=SubscriptionPublic,
    responses=problem_responses(404, 422),
)
@admin_only
async def update_subscription(
    subscription_id: ResourceId, body: SubscriptionUpdate, database: DatabaseDep, request: Request
) -> JSONResponse:
    if body.url is not None:
        await check_url(request, body.url)
    changes = body.model_dump(include=body.model_fields_set)
    return JSONResponse(await database.write(subscriptions.update, subscription_id, changes))


@router.post(
    "/event-subscriptions/{subscription_id}/rotate-secret",
    operation_id="event-subscriptions-rotate-secret",
    summary="Give a subscription a new secret",
    description="Answers the new `secret`, shown this once. Until `previous_secret_expires_at` "
    "(`expire_old_after_seconds` from now, default 86400) every delivery carries two `v1,` "
    "signatures, with the replaced secret and with the new one, so receivers can switch "
    "without missing one. Rotating again during an overlap ends it: only the secret just "
    "replaced signs on.",
    response_model=SecretRotated,
    responses=problem_responses(404, 422),
)
@admin_only
async def rotate_secret(
    subscription_id: ResourceId,
    database: DatabaseDep,
    body: Annotated[SecretRotation | None, Body()] = None,
) -> JSONResponse:
    overlap = (body or SecretRotation()).expire_old_after_seconds
    return JSONResponse(await database.write(subscriptions.rotate_secret, subscription_id, overlap))


@router.post(
    "/event-subscriptions/{subscription_id}/test",
    operation_id="event-subscriptions-test",
    summary="Send a test ping to a subscription's URL now",
    description="POSTs a signed event of type `ping` (`data`: `subscription_id`) to the URL, as "
    "a delivery is sent (URL check, timeout, signatures), even to a disabled subscription, and "
    "answers what the receiver answered. The ping is not stored: it is not in the feed nor in "
    "the delivery log, and no other subscriber gets it.",
    response_model=PingResult,
    responses=problem_responses(404, 422),
)
@admin_only
async def test_subscription(
    subscription_id: ResourceId, database: DatabaseDep, request: Request
) -> JSONResponse:
    url, secrets = await database.read(subscriptions.for_sending, subscription_id)
    worker = getattr(request.app.state, "deliveries", None)
    settings = request.app.state.settings
    return JSONResponse(await ping.ping(subscription_id, url, secrets, settings, worker))


@router.post(
    "/event-subscriptions/{subscription_id}/deliveries/{delivery_id}/retry",
    operation_id="event-subscriptions-deliveries-retry",
    status_code=202,
    summary="Send a failed delivery again",
    description="Queues the delivery again, due now, with a fresh set of attempts; it is sent "
    "with the same `webhook-id` (the event's id). Answers the delivery, `pending`. A delivery "
    "that is not `failed` is 409 `delivery_not_failed`. A disabled subscription's delivery "
    "waits until it is enabled.",
    response_model=DeliveryPublic,
    responses=problem_responses(404, 409, 422),
)
@admin_only
async def retry_delivery(
    subscription_id: ResourceId, delivery_id: DeliveryId, database: DatabaseDep
) -> JSONResponse:
    queued = await database.write(subscriptions.retry_delivery, subscription_id, delivery_id)
    return JSONResponse(queued, status_code=202)


@router.delete(
    "/event-subscriptions/{subscription_id}",
    operation_id="event-subscriptions-delete",
    status_code=204,
    summary="Delete a subscription",
    description="Nothing more is sent to it; its pending deliveries are dropped.",
    responses=problem_responses(404, 422),
)
@admin_only
async def delete_subscription(subscription_id: ResourceId, database: DatabaseDep) -> Response:
    await database.write(subscriptions.delete, subscription_id)
    return Response(status_code=204)


@router.get(
    "/event-subscriptions/{subscription_id}/deliveries",
    operation_id="event-subscriptions-deliveries-list",
    summary="A subscription's deliveries, newest first",
    response_model=CursorPage[DeliveryPublic],
    responses=problem_responses(404, 422),
)
@allow(Role.READONLY)
async def list_deliveries(
    subscription_id: ResourceId, database: DatabaseDep, limit: Limit = 20, after: After = None
) -> JSONResponse:
    before = None if after is None else outbox.decode_cursor(DELIVERIES, after, 2)
    if before is not None and before[0] != subscription_id:
        raise outbox.invalid_cursor()
    items = await database.read(
        subscriptions.deliveries,
        subscription_id,
        limit=limit + 1,
        before=before[1] if before else None,
    )
    more, items = len(items) > limit, items[:limit]
    next_ = outbox.encode_cursor(DELIVERIES, subscription_id, items[-1]["id"]) if more else None
    return JSONResponse(envelope(items, limit, next_))
