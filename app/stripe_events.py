"""Stripe's events, as Stripe sends them to POST /webhooks/stripe, read into what the service
applies: a `Payment` (app/payments.py, the one rule both webhooks go through), or the reason
the event changes nothing here.

Stripe sends an Event object (`{"id": "evt_...", "object": "event", "type": ..., "data":
{"object": {...}}}`); its `data.object` is the PaymentIntent or Refund as it was when the event
happened. Stripe adds fields to its objects over time, so only the fields used are read and the
rest are ignored (Stripe's own libraries do the same).

- `payment_intent.succeeded` and `payment_intent.payment_failed`: the PaymentIntent's
  `metadata.order_id` (set by the storefront when it created the PaymentIntent) names the
  order; they become `payment.succeeded` (amount `amount_received`) and `payment.failed`.
- `refund.created` and `refund.updated` with status `succeeded`: a `payment.refunded` of the
  order the refund's PaymentIntent paid (its `payment_id`), with the refund's `re_...` id, so
  each Stripe refund is recorded once however many of its events arrive.
- Every other type changes nothing and is answered as received.
"""

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.core.formats import MAX_ID, CurrencyCode
from app.payments import Payment
from app.tables import PaymentProvider

# What a PaymentIntent's metadata.order_id must look like to name an order of this shop.
_ORDER_ID = re.compile(r"^[1-9][0-9]{0,9}$")


# The event types the service reads; every other type is received and ignored.
class StripeEventType(StrEnum):
    PAYMENT_INTENT_SUCCEEDED = "payment_intent.succeeded"
    PAYMENT_INTENT_PAYMENT_FAILED = "payment_intent.payment_failed"
    REFUND_CREATED = "refund.created"
    REFUND_UPDATED = "refund.updated"


# The payment event type each PaymentIntent event becomes (app/schemas.py PaymentEventType).
_PAYMENT_TYPES: dict[StripeEventType, Literal["payment.succeeded", "payment.failed"]] = {
    StripeEventType.PAYMENT_INTENT_SUCCEEDED: "payment.succeeded",
    StripeEventType.PAYMENT_INTENT_PAYMENT_FAILED: "payment.failed",
}


# A Stripe object: the fields the service reads; Stripe's others are ignored.
class _StripeObject(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# An Event object's envelope: its data.object is read by the type's model below.
class StripeEvent(_StripeObject):
    id: str = Field(pattern=r"^evt_[A-Za-z0-9_]+$", max_length=128)
    object: Literal["event"]
    type: str = Field(min_length=1, max_length=128)
    data: dict[str, Any]


# A PaymentIntent, as data.object of a payment_intent.* event.
class PaymentIntentObject(_StripeObject):
    id: str = Field(pattern=r"^pi_[A-Za-z0-9_]+$", max_length=255)
    object: Literal["payment_intent"]
    amount: int = Field(ge=0)
    amount_received: int = Field(default=0, ge=0)
    currency: CurrencyCode
    metadata: dict[str, str] = {}


# A Refund, as data.object of a refund.* event.
class RefundObject(_StripeObject):
    id: str = Field(pattern=r"^re_[A-Za-z0-9_]+$", max_length=255)
    object: Literal["refund"]
    amount: int = Field(ge=1)
    currency: CurrencyCode
    payment_intent: str = Field(pattern=r"^pi_[A-Za-z0-9_]+$", max_length=255)
    status: str


# Why an event changes nothing here (answered 200 so Stripe does not retry it).
@dataclass(frozen=True)
class Ignored:
    reason: str | None  # None: a type the service does not read


def _invalid(error: ValidationError, *loc: str | int) -> RequestValidationError:
    return RequestValidationError([{**e, "loc": ("body", *loc, *e["loc"])} for e in error.errors()])


def parse_event(body: bytes) -> StripeEvent:
    """The body as an Event object (422 otherwise; malformed JSON is the caller's 400)."""
    try:
        return StripeEvent.model_validate_json(body)
    except ValidationError as error:
        raise _invalid(error) from None


def _object(event: StripeEvent, model: type[_StripeObject]) -> Any:
    try:
        return model.model_validate(event.data.get("object"))
    except ValidationError as error:
        raise _invalid(error, "data", "object") from None


def read(event: StripeEvent, signed_at: int, raw_body: bytes) -> Payment | Ignored:
    """What a verified event asks of the service; 422 when a type it reads is malformed."""
    if event.type not in set(StripeEventType):
        return Ignored(None)
    kind = StripeEventType(event.type)
    if kind in _PAYMENT_TYPES:
        return _payment(event, kind, signed_at, raw_body)
    return _refund(event, signed_at, raw_body)


def _payment(
    event: StripeEvent, kind: StripeEventType, signed_at: int, raw_body: bytes
) -> Payment | Ignored:
    intent: PaymentIntentObject = _object(event, PaymentIntentObject)
    order_id = intent.metadata.get("order_id", "")
    if not _ORDER_ID.match(order_id) or int(order_id) > MAX_ID:
        return Ignored(
            f"PaymentIntent {intent.id} has no metadata.order_id naming an order of this shop"
        )
    succeeded = kind is StripeEventType.PAYMENT_INTENT_SUCCEEDED
    return Payment(
        PaymentProvider.STRIPE,
        event.id,
        signed_at,
        raw_body,
        _PAYMENT_TYPES[kind],
        int(order_id),
        intent.amount_received if succeeded else intent.amount,
        intent.currency,
        intent.id,
    )


def _refund(event: StripeEvent, signed_at: int, raw_body: bytes) -> Payment | Ignored:
    refund: RefundObject = _object(event, RefundObject)
    if refund.status != "succeeded":
        return Ignored(f"refund {refund.id} is {refund.status}, not succeeded")
    return Payment(
        PaymentProvider.STRIPE,
        event.id,
        signed_at,
        raw_body,
        "payment.refunded",
        None,  # the order its PaymentIntent paid
        refund.amount,
        refund.currency,
        refund.payment_intent,
        refund.id,
    )
