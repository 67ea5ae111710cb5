"""The payment provider's webhook: verify the raw body's signature, then apply the event."""

import logging
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from app import payments, refunds, signing
from app.core import metrics
from app.core.access import WEBHOOK
from app.core.config import Settings
from app.core.errors import ApiError, problem_responses
from app.db.connect import DatabaseDep
from app.http.access import act_as, no_key
from app.http.json_payloads import json_response, loads_strict
from app.http.request_limits import payload_too_large
from app.schemas import PaymentEventCreate, PaymentEventReceipt
from app.tables import PaymentProvider

# This router's OpenAPI tag (app/routers/__init__.py lists them in the docs' order).
TAG = {
    "name": "webhooks",
    "description": "Signed payment events from the payment provider, or from Stripe.",
}
router = APIRouter(prefix="/webhooks", tags=[TAG["name"]])

MAX_BODY_BYTES = 64 * 1024
PROVIDER = PaymentProvider.PAYMENT
log = logging.getLogger("app.webhooks")


# A delivery whose signature and timestamp have been checked: its id, time and raw bytes.
@dataclass(frozen=True)
class Delivery:
    event_id: str
    signed_at: int
    body: bytes


async def read_body(request: Request) -> bytes:
    """The raw body, refused as soon as it is known to exceed the limit (never read whole)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise payload_too_large(MAX_BODY_BYTES)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise payload_too_large(MAX_BODY_BYTES)
    return bytes(body)


async def verified_delivery(request: Request) -> Delivery:
    """Fail closed without a secret; then size, signature and timestamp, in that order."""
    settings: Settings = request.app.state.settings
    secrets = settings.webhook_secrets
    if not secrets:
        raise ApiError(
            "webhook_not_configured",
            "No WEBHOOK_SECRET is set, so no delivery can be verified.",
        )
    body = await read_body(request)
    headers = signing.read_headers(request.headers)
    try:
        signed_at = signing.verify(
            secrets, headers, body, tolerance=settings.webhook_tolerance_seconds
        )
    except signing.SignatureError as error:
        log.warning("webhook delivery refused: %s (%s)", error.code, error.detail)
        metrics.webhook_delivery(metrics.signature_outcome(error.code), PROVIDER)
        raise ApiError(error.code, error.detail) from None
    assert headers.event_id is not None  # verify() refuses a delivery without one
    return Delivery(headers.event_id, signed_at, body)


def check_json(body: bytes) -> None:
    """Malformed JSON (duplicate keys included) is 400."""
    try:
        loads_strict(body)
    except ValueError as error:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body", 0), "msg": f"JSON decode error: {error}"}]
        ) from None


def parse_event(body: bytes) -> PaymentEventCreate:
    """The body as an event: malformed JSON (duplicate keys included) is 400, a body that fails
    validation 422."""
    check_json(body)
    try:
        return PaymentEventCreate.model_validate_json(body)
    except ValidationError as error:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in error.errors()]
        ) from None


EXAMPLE = {"type": "payment.succeeded", "order_id": 12, "amount": "39.98", "payment_id": "pay_123"}
BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": PaymentEventCreate.model_json_schema(),
                "example": EXAMPLE,
            }
        },
    }
}
HEADER_DOC = (
    "Sign `{event_id}.{timestamp}.{raw body}`; see the README or the Standard "
    "Webhooks headers `webhook-id`, `webhook-timestamp`, `webhook-signature`."
)


@router.post(
    "/payment",
    operation_id="webhooks-payment",
    summary="Receive a signed payment event",
    description="Verifies the HMAC-SHA256 signature over the raw body (our `X-*` headers or "
    "the Standard Webhooks headers), then the timestamp (within `WEBHOOK_TOLERANCE_SECONDS`), "
    "then applies the event exactly once: `payment.succeeded` moves a PENDING order to PAID "
    "(the amount must equal its total; a `currency`, if sent, must be the shop's), "
    "`payment.failed` cancels a PENDING order and returns "
    "its stock. A repeated event id answers `duplicate: true` and changes nothing. Bodies "
    "over 64 KiB are refused.",
    response_model=PaymentEventReceipt,
    responses=problem_responses(400, 401, 404, 409, 413, 422, 503),
    openapi_extra=BODY_DOC,
)
@no_key
async def payment_webhook(
    request: Request,
    delivery: Annotated[Delivery, Depends(verified_delivery)],
    database: DatabaseDep,
    x_event_id: Annotated[
        str | None, Header(description="The sender's unique event id (1-128 printable ASCII).")
    ] = None,
    x_webhook_timestamp: Annotated[
        str | None, Header(description="Unix seconds when the sender signed.")
    ] = None,
    x_webhook_signature: Annotated[
        str | None, Header(description="`sha256=<hex>`, several separated by commas. " + HEADER_DOC)
    ] = None,
) -> Response:
    # The three headers are declared so Swagger UI shows them; verified_delivery reads them.
    event = parse_event(delivery.body)
    act_as(request, WEBHOOK)
    try:
        receipt = await database.write(
            payments.apply_event, delivery.event_id, delivery.signed_at, event, delivery.body
        )
    except refunds.AlreadyRecorded as repeat:
        payment = payments.Payment.of_event(
            delivery.event_id, delivery.signed_at, event, delivery.body
        )
        receipt = await database.read(payments.refund_receipt, payment, repeat.recorded.refund)
    metrics.webhook_delivery("duplicate" if receipt["duplicate"] else "processed", PROVIDER)
    return json_response(receipt)
