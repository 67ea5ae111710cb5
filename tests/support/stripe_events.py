"""Stripe's events as Stripe documents them (an Event object whose data.object is a
PaymentIntent or a Refund), signed by the tests' own code, and checked against Stripe's own
library: every request `deliver_stripe` sends, `stripe.Webhook.construct_event` accepts."""

import json
import time
import uuid
from typing import Any

import stripe
from fastapi.testclient import TestClient
from httpx import Response

from app import signing

# Signing secrets as Stripe's dashboard shows them: `whsec_` and 32 characters.
STRIPE_SECRET = "whsec_" + "Tz7mKq2VbX9cR4nL8wP1yJ6hF3dS5aGe"
NEXT_STRIPE_SECRET = "whsec_" + "Nw3QxL7pZr2Ub9Ke5Hs1Vc8Ym4Ta6Dj0"
STRIPE_URL = "/webhooks/stripe"
API_VERSION = "2026-09-30.clover"


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def payment_intent(
    order: Any,
    *,
    amount: int | None = None,
    currency: str = "usd",
    status: str = "succeeded",
    metadata: dict[str, str] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """A PaymentIntent with the fields Stripe sends (amounts in minor units, lower-case
    currency); `metadata.order_id` names `order` unless `metadata` is given."""
    cents = round(float(order["total"]) * 100) if amount is None else amount
    intent = {
        "id": _id("pi"),
        "object": "payment_intent",
        "amount": cents,
        "amount_capturable": 0,
        "amount_received": cents if status == "succeeded" else 0,
        "capture_method": "automatic_async",
        "client_secret": "pi_secret_redacted",
        "confirmation_method": "automatic",
        "created": int(time.time()) - 5,
        "currency": currency,
        "customer": None,
        "description": None,
        "last_payment_error": None,
        "latest_charge": _id("ch") if status == "succeeded" else None,
        "livemode": False,
        "metadata": {"order_id": str(order["id"])} if metadata is None else metadata,
        "payment_method": _id("pm"),
        "payment_method_types": ["card"],
        "status": status,
    }
    intent.update(overrides)
    return intent


def refund(payment_intent_id: str, amount: int, status: str = "succeeded") -> dict[str, Any]:
    """A Refund as Stripe sends it in refund.created / refund.updated."""
    return {
        "id": _id("re"),
        "object": "refund",
        "amount": amount,
        "balance_transaction": _id("txn"),
        "charge": _id("ch"),
        "created": int(time.time()),
        "currency": "usd",
        "metadata": {},
        "payment_intent": payment_intent_id,
        "reason": "requested_by_customer",
        "status": status,
    }


def stripe_event(type_: str, data_object: dict[str, Any], event_id: str | None = None) -> bytes:
    """An Event object around `data_object`, serialized as Stripe does (indented JSON)."""
    event = {
        "id": event_id or _id("evt"),
        "object": "event",
        "api_version": API_VERSION,
        "created": int(time.time()),
        "data": {"object": data_object},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": _id("req"), "idempotency_key": str(uuid.uuid4())},
        "type": type_,
    }
    return json.dumps(event, indent=2).encode()


def succeeded(order: Any, **intent: Any) -> bytes:
    return stripe_event("payment_intent.succeeded", payment_intent(order, **intent))


def failed(order: Any, **intent: Any) -> bytes:
    fields = {"status": "requires_payment_method", **intent}
    return stripe_event("payment_intent.payment_failed", payment_intent(order, **fields))


def stripe_header(body: bytes, secrets: list[str], timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return signing.stripe_signature_header(secrets, timestamp, body)


def deliver_stripe(
    client: TestClient,
    body: bytes,
    *,
    secret: str = STRIPE_SECRET,
    timestamp: int | None = None,
    header: str | None = None,
    check_with_stripe: bool = True,
) -> Response:
    """POST `body` as Stripe would, signed with `secret` by the tests' signer (or with the
    `header` given); unless told otherwise, first check that Stripe's own library accepts it."""
    header = header if header is not None else stripe_header(body, [secret], timestamp)
    if check_with_stripe:
        event = stripe.Webhook.construct_event(body, header, secret)
        assert event["id"] == json.loads(body)["id"]
    return client.post(
        STRIPE_URL,
        content=body,
        headers={"Content-Type": "application/json", signing.STRIPE_HEADER: header},
    )
