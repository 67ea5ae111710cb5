"""Stripe's webhook: verify the `Stripe-Signature` over the raw body, then read the event and
apply it through the same rule as the payment webhook (app/payments.py)."""

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Request, Response
from pydantic import BaseModel, ConfigDict

from app import payments, refunds, signing, stripe_events
from app.core import metrics
from app.core.access import STRIPE
from app.core.config import Settings
from app.core.errors import ApiError, problem_responses
from app.db.connect import DatabaseDep
from app.http.access import act_as, no_key
from app.http.json_payloads import json_response
from app.routers.payments import TAG, check_json, read_body
from app.schemas import PaymentEventReceipt
from app.tables import PaymentProvider

router = APIRouter(prefix="/webhooks", tags=[TAG["name"]])
PROVIDER = PaymentProvider.STRIPE
log = logging.getLogger("app.webhooks")


# The answer to an event of a type the service does not act on.
class StripeEventSkipped(BaseModel):
    model_config = ConfigDict(extra="forbid")
    received: Literal[True]
    ignored: Literal[True]


# The answer to an event of a type it acts on that changes nothing here, and why (an order not
# of this shop, a refund that did not succeed...).
class StripeEventIgnored(BaseModel):
    model_config = ConfigDict(extra="forbid")
    received: Literal[True]
    ignored: Literal[True]
    reason: str


StripeEventAnswer = PaymentEventReceipt | StripeEventIgnored | StripeEventSkipped


async def verified(request: Request) -> tuple[int, bytes]:
    """Fail closed without a secret; then size, signature and timestamp, in that order (as
    POST /webhooks/payment)."""
    settings: Settings = request.app.state.settings
    secrets = settings.stripe_webhook_secrets
    if not secrets:
        raise ApiError(
            "webhook_not_configured",
            "No STRIPE_WEBHOOK_SECRET is set, so no delivery can be verified.",
        )
    body = await read_body(request)
    try:
        signed_at = signing.verify_stripe(
            secrets,
            request.headers.get(signing.STRIPE_HEADER),
            body,
            tolerance=settings.webhook_tolerance_seconds,
        )
    except signing.SignatureError as error:
        log.warning("stripe delivery refused: %s (%s)", error.code, error.detail)
        metrics.webhook_delivery(metrics.signature_outcome(error.code), PROVIDER)
        raise ApiError(error.code, error.detail) from None
    return signed_at, body


def _ignored(event: stripe_events.StripeEvent, reason: str | None) -> Response:
    metrics.webhook_delivery("ignored", PROVIDER)
    answer: dict[str, Any] = {"received": True, "ignored": True}
    if reason is not None:
        log.info("stripe event %s (%s) ignored: %s", event.id, event.type, reason)
        answer["reason"] = reason
    return json_response(answer)


EXAMPLE = {
    "id": "evt_3PqXyZ2eZvKYlo2C0a1b2c3d",
    "object": "event",
    "type": "payment_intent.succeeded",
    "data": {
        "object": {
            "id": "pi_3PqXyZ2eZvKYlo2C1x2y3z4w",
            "object": "payment_intent",
            "amount": 3998,
            "amount_received": 3998,
            "currency": "usd",
            "status": "succeeded",
            "metadata": {"order_id": "12"},
        }
    },
}


@router.post(
    "/stripe",
    operation_id="webhooks-stripe",
    summary="Receive an event from Stripe",
    description="Point a Stripe webhook endpoint here (docs/webhooks.md). Verifies the "
    '`Stripe-Signature` (`t=<unix seconds>,v1=<hex HMAC-SHA256 of "{t}.{raw body}">`, keyed by '
    "`STRIPE_WEBHOOK_SECRET`), then the timestamp (within `WEBHOOK_TOLERANCE_SECONDS`), then "
    "applies the event exactly once by its `evt_` id: `payment_intent.succeeded` pays the order "
    "its PaymentIntent's `metadata.order_id` names (`amount_received` and `currency` must be "
    "the order's total and currency), `payment_intent.payment_failed` cancels a PENDING one. "
    "Every other type, and an event for no order of this shop, is answered 200 and ignored. "
    "`refund.created` and `refund.updated` (status `succeeded`) record a refund of the order "
    "the refund's PaymentIntent paid, once per `re_` id whichever of Stripe and "
    "`POST /orders/{id}/refunds` reports it first. "
    "Bodies over 64 KiB are refused.",
    response_model=StripeEventAnswer,
    responses=problem_responses(400, 401, 409, 413, 422, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": stripe_events.StripeEvent.model_json_schema(),
                    "example": EXAMPLE,
                }
            },
        }
    },
)
@no_key
async def stripe_webhook(
    request: Request,
    database: DatabaseDep,
    stripe_signature: Annotated[
        str | None,
        Header(description="`t=<unix seconds>,v1=<hex>`; several `v1` while rotating."),
    ] = None,
) -> Response:
    # The header is declared so Swagger UI shows it; `verified` reads it.
    signed_at, body = await verified(request)
    check_json(body)
    event = stripe_events.parse_event(body)
    read = stripe_events.read(event, signed_at, body)
    if isinstance(read, stripe_events.Ignored):
        return _ignored(event, read.reason)
    act_as(request, STRIPE)
    try:
        receipt = await database.write(payments.apply_payment, read)
    except ApiError as error:
        if error.code != "order_not_found":
            raise
        # Not an order of this shop (or one gone): Stripe must not retry it for days.
        reason = (
            f"order {read.order_id} does not exist"
            if read.order_id is not None
            else f"no order was paid by {read.payment_id}"
        )
        return _ignored(event, reason)
    except refunds.AlreadyRecorded as repeat:
        receipt = await database.read(payments.refund_receipt, read, repeat.recorded.refund)
    metrics.webhook_delivery("duplicate" if receipt["duplicate"] else "processed", PROVIDER)
    return json_response(receipt)
