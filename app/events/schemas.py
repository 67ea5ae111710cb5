"""What clients send and see of events, subscriptions and deliveries (docs/events.md)."""

from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field, StrictBool, StrictInt, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from app.core.formats import TEXT_PATTERN, Timestamp
from app.events.metrics import AttemptResult
from app.schemas import RequestBody
from app.tables import DeliveryStatus, EventType

ItemT = TypeVar("ItemT")
EXAMPLE_URL = "https://shop.example/hooks/orders"


# A page of a cursor-paged list: `next` is where to read on (on /events, never null).
class CursorPage(BaseModel, Generic[ItemT]):
    items: list[ItemT]
    total: int | None
    limit: int
    offset: int | None
    next: str | None


# An event: what happened, and the resource as it was right after.
class EventPublic(BaseModel):
    id: str = Field(examples=["evt_3f9a0c1b2d4e5f60718293a4"])
    type: EventType
    created_at: Timestamp
    actor: str = Field(
        description="Who made the change: an API key's name, `webhook`, `system` (expiry), "
        "`anonymous` (no API_KEYS), or `unknown` (recorded before actors existed).",
        examples=["storefront"],
    )
    data: dict[str, Any] = Field(
        description="`order` (as GET /orders/{id} shows it) for order events; "
        "`product` and `movement` for stock.adjusted; `subscription`, `reason` and "
        "`failing_since` for subscription.disabled."
    )


# A subscription's URL, its types (distinct event types, or ["*"] alone: a union JSON Schema
# states exactly) and its description, as POST and PATCH take them.
Url = Annotated[
    str,
    Field(
        min_length=1,
        max_length=2048,
        description="An http(s) URL that resolves to public addresses only.",
        examples=[EXAMPLE_URL],
    ),
]
Types = Annotated[
    Annotated[
        list[EventType],
        Field(min_length=1, max_length=len(EventType), json_schema_extra={"uniqueItems": True}),
    ]
    | Annotated[list[Literal["*"]], Field(min_length=1, max_length=1)],
    Field(
        description='The event types to send, or ["*"] for all of them.',
        examples=[["order.paid", "order.canceled"]],
    ),
]
Description = Annotated[str, Field(max_length=500, pattern=TEXT_PATTERN)]


def _no_repeats(types: list[str] | None) -> list[str] | None:
    if types is not None and len(set(types)) != len(types):
        raise ValueError("each type may appear once")
    return types


# The body of POST /event-subscriptions.
class SubscriptionCreate(RequestBody):
    url: Url
    types: Types
    description: Description | None = None

    _types_distinct = field_validator("types")(_no_repeats)


# The body of PATCH /event-subscriptions/{id}: only the fields sent change. Only `description`
# may be set to null (cleared); the schema says so, as SkipJsonSchema keeps null out of the rest.
class SubscriptionUpdate(RequestBody):
    url: Url | SkipJsonSchema[None] = None
    types: Types | SkipJsonSchema[None] = None
    description: Description | None = None
    enabled: StrictBool | SkipJsonSchema[None] = Field(
        default=None,
        description="false: nothing is sent, and no delivery is queued, until it is true again.",
    )

    _types_distinct = field_validator("types")(_no_repeats)

    @model_validator(mode="after")
    def required_fields_are_not_null(self) -> "SubscriptionUpdate":
        for field in ("url", "types", "enabled"):
            if field in self.model_fields_set and getattr(self, field) is None:
                raise ValueError(f"{field} may be changed but not set to null")
        return self


# The body of POST /event-subscriptions/{id}/rotate-secret.
class SecretRotation(RequestBody):
    expire_old_after_seconds: StrictInt = Field(
        default=86400,
        ge=0,
        le=86400,
        description="How long the replaced secret keeps signing beside the new one "
        "(0: it stops at once).",
    )


# A subscription as the API shows it (never with its secret).
class SubscriptionPublic(BaseModel):
    id: int
    url: str
    types: list[str]
    description: str | None
    enabled: bool
    created_at: Timestamp


# The answer to POST /event-subscriptions: the only one that carries the secret.
class SubscriptionCreated(SubscriptionPublic):
    secret: str = Field(
        description="The signing secret (`whsec_…`), shown in this answer only.",
        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    )


# The answer to POST /event-subscriptions/{id}/rotate-secret: the new secret, shown once.
class SecretRotated(SubscriptionCreated):
    previous_secret_expires_at: Timestamp | None = Field(
        description="Until when the replaced secret signs too (null: it no longer does)."
    )


# The answer to POST /event-subscriptions/{id}/test: what the receiver answered a ping.
class PingResult(BaseModel):
    event_id: str = Field(description="The ping's `webhook-id` (a ping is never stored).")
    delivered: bool = Field(description="Whether the receiver answered 2xx in time.")
    result: AttemptResult
    response_status: int | None = Field(description="The receiver's HTTP status, if any.")
    duration_ms: int
    error: str | None


# One event's delivery to a subscription: its state and its last attempt.
class DeliveryPublic(BaseModel):
    id: int
    event_id: str
    event_type: EventType
    attempt: int = Field(description="Attempts made so far (0: not yet tried).")
    status: DeliveryStatus
    response_status: int | None
    error: str | None
    duration_ms: int | None
    attempted_at: Timestamp | None
    next_attempt_at: Timestamp | None = Field(description="When it is tried next (pending only).")
