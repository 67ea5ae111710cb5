"""What clients send and see of events, subscriptions and deliveries (docs/events.md)."""

from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field, field_validator

from app.core.formats import TEXT_PATTERN, Timestamp
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
        "`product` and `movement` for stock.adjusted."
    )


# The body of POST /event-subscriptions.
class SubscriptionCreate(RequestBody):
    url: str = Field(
        min_length=1,
        max_length=2048,
        description="An http(s) URL that resolves to public addresses only.",
        examples=[EXAMPLE_URL],
    )
    # Either distinct event types, or ["*"] alone: a union JSON Schema states exactly.
    types: (
        Annotated[
            list[EventType],
            Field(min_length=1, max_length=len(EventType), json_schema_extra={"uniqueItems": True}),
        ]
        | Annotated[list[Literal["*"]], Field(min_length=1, max_length=1)]
    ) = Field(
        description='The event types to send, or ["*"] for all of them.',
        examples=[["order.paid", "order.canceled"]],
    )
    description: str | None = Field(default=None, max_length=500, pattern=TEXT_PATTERN)

    @field_validator("types")
    @classmethod
    def no_repeats(cls, types: list[str]) -> list[str]:
        if len(set(types)) != len(types):
            raise ValueError("each type may appear once")
        return types


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
