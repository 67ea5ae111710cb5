"""POST /webhooks/stripe over HTTP (both engines): Stripe's events, built as Stripe documents
them and signed by the tests' own code, accepted by Stripe's library (`construct_event`, in
`deliver_stripe`) and applied by the service, with the database checked after."""

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator

import pytest
import stripe
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine

from app.core.config import Settings
from app.main import create_app
from tests.support.factories import Db, Record, make_order, make_product
from tests.support.serving import serving
from tests.support.stripe_events import (
    NEXT_STRIPE_SECRET,
    STRIPE_SECRET,
    STRIPE_URL,
    deliver_stripe,
    failed,
    payment_intent,
    refund,
    stripe_event,
    stripe_header,
    succeeded,
)
from tests.support.webhooks import deliver, event_body, order_status, payment_events, stock_of


def _serve(settings: Settings, engine: Engine, secret: str | None) -> Iterator[TestClient]:
    configured = settings.model_copy(
        update={
            "stripe_webhook_secret": SecretStr(secret) if secret else None,
            "webhook_secret": SecretStr("test-webhook-secret-old"),
        }
    )
    with serving(create_app(configured, engine)) as client:
        yield client


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    """The app with two Stripe signing secrets, as while Stripe rolls the endpoint's secret."""
    yield from _serve(settings, engine, f"{STRIPE_SECRET},{NEXT_STRIPE_SECRET}")


@pytest.fixture
def mug(db: Db) -> Record:
    return make_product(db, price="19.99", stock=10)


@pytest.fixture
def order(db: Db, mug: Record) -> Record:
    return make_order(db, (mug, 2))  # total 39.98, stock 10 -> 8


def problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code
    return response.json()


def test_payment_intent_succeeded_pays_the_order_once_by_its_event_id(client, db, order):
    body = succeeded(order)
    event_id, intent_id = json.loads(body)["id"], json.loads(body)["data"]["object"]["id"]

    first = deliver_stripe(client, body)
    again = deliver_stripe(client, body)  # Stripe redelivers, re-signed

    assert first.status_code == 200, first.text
    assert first.json() == {
        "event_id": event_id,
        "duplicate": False,
        "order_id": order.id,
        "order_status": "PAID",
    }
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert order_status(db, order.id) == "PAID"
    [record] = payment_events(db)
    assert (record.provider, record.event_id, record.type) == (
        "stripe",
        event_id,
        "payment.succeeded",
    )
    assert (record.payment_id, record.amount_cents) == (intent_id, 3998)
    assert record.raw_body == body.decode()
    actors = db.rows("SELECT type, actor FROM events WHERE type = 'order.paid'")
    assert [(row["type"], row["actor"]) for row in actors] == [("order.paid", "stripe")]


def test_the_path_with_a_trailing_slash_is_the_same_webhook(client, db, order):
    body = succeeded(order)
    headers = {
        "Content-Type": "application/json",
        "Stripe-Signature": stripe_header(body, [STRIPE_SECRET]),
    }

    response = client.post(STRIPE_URL + "/", content=body, headers=headers)

    assert response.status_code == 200, response.text
    assert order_status(db, order.id) == "PAID"


def test_every_secret_while_rotating_verifies_and_several_v1_are_read(client, db, order):
    body = succeeded(order)
    now = int(time.time())
    # Stripe sends one v1 per secret while it rolls the endpoint's secret, and may add others.
    header = stripe_header(body, ["whsec_an_old_secret_no_longer_held", NEXT_STRIPE_SECRET], now)
    header += ",v0=" + "ab" * 32

    response = deliver_stripe(client, body, secret=NEXT_STRIPE_SECRET, header=header)

    assert response.status_code == 200, response.text
    assert order_status(db, order.id) == "PAID"


def test_a_delivery_signed_by_stripes_own_helper_is_applied(client, db, order):
    body = succeeded(order)
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), STRIPE_SECRET)

    response = deliver_stripe(client, body, header=header)

    assert response.status_code == 200, response.text
    assert order_status(db, order.id) == "PAID"


def test_payment_intent_payment_failed_cancels_and_returns_the_stock(client, db, order, mug):
    response = deliver_stripe(client, failed(order))

    assert response.status_code == 200, response.text
    assert response.json()["order_status"] == "CANCELED"
    assert order_status(db, order.id) == "CANCELED"
    assert stock_of(db, mug.id) == 10
    cancel = db.value("SELECT cancel_reason FROM orders WHERE id = :id", id=order.id)
    assert cancel == "payment_failed"


@pytest.mark.parametrize(
    ("intent", "code"),
    [
        ({"amount": 3997}, "amount_mismatch"),
        ({"currency": "eur"}, "currency_mismatch"),
    ],
)
def test_an_amount_or_currency_not_the_orders_is_422_and_recorded_nowhere(
    client, db, order, intent, code
):
    response = deliver_stripe(client, succeeded(order, **intent))

    problem(response, 422, code)
    assert order_status(db, order.id) == "PENDING"
    assert payment_events(db) == []


def test_an_upper_case_currency_is_the_same_currency(client, db, order):
    assert deliver_stripe(client, succeeded(order, currency="USD")).status_code == 200
    assert order_status(db, order.id) == "PAID"


@pytest.mark.parametrize(
    "metadata",
    [{}, {"order_id": "not-a-number"}, {"order_id": "0"}, {"order_id": "99999999999"}],
)
def test_a_payment_intent_naming_no_order_of_this_shop_is_ignored(client, db, order, metadata):
    response = deliver_stripe(client, succeeded(order, metadata=metadata))

    assert response.status_code == 200, response.text
    assert response.json()["ignored"] is True and response.json()["received"] is True
    assert "metadata.order_id" in response.json()["reason"]
    assert payment_events(db) == [] and order_status(db, order.id) == "PENDING"


def test_an_unknown_order_is_ignored_and_logged_not_retried(client, db, order, caplog):
    response = deliver_stripe(client, succeeded(order, metadata={"order_id": "4242"}))

    assert response.status_code == 200, response.text
    assert response.json() == {
        "received": True,
        "ignored": True,
        "reason": "order 4242 does not exist",
    }
    assert "order 4242 does not exist" in caplog.text
    assert payment_events(db) == []


def test_every_other_event_type_is_received_and_ignored(client, db, order):
    body = stripe_event("customer.created", {"id": "cus_123", "object": "customer"})

    response = deliver_stripe(client, body)

    assert response.status_code == 200
    assert response.json() == {"received": True, "ignored": True}
    assert payment_events(db) == [] and order_status(db, order.id) == "PENDING"


def test_a_succeeded_refund_is_recorded_once_however_many_of_its_events_arrive(client, db, order):
    paid = succeeded(order)
    assert deliver_stripe(client, paid).status_code == 200
    intent_id = json.loads(paid)["data"]["object"]["id"]
    stripe_refund = refund(intent_id, 1000)
    created = stripe_event("refund.created", stripe_refund)
    updated = stripe_event("refund.updated", stripe_refund)

    first = deliver_stripe(client, created)
    again = deliver_stripe(client, updated)

    assert first.status_code == 200, first.text
    assert (first.json()["duplicate"], again.json()["duplicate"]) == (False, True)
    refunds = client.get(f"/orders/{order.id}/refunds").json()["items"]
    assert [(r["amount"], r["provider_refund_id"], r["source"]) for r in refunds] == [
        ("10.00", stripe_refund["id"], "webhook")
    ]
    stored = db.rows(
        "SELECT status, amount_refunded_cents, payment_status FROM orders WHERE id = :id",
        id=order.id,
    )
    assert stored == [
        {"status": "PAID", "amount_refunded_cents": 1000, "payment_status": "partially_refunded"}
    ]
    assert stock_of(db, order["items"][0]["product_id"]) == 8  # a webhook refund moves no stock


def test_a_refund_of_a_payment_no_order_made_is_ignored(client, db, order):
    response = deliver_stripe(client, stripe_event("refund.created", refund("pi_unknown", 100)))

    assert response.status_code == 200, response.text
    assert response.json()["ignored"] is True and "pi_unknown" in response.json()["reason"]


def test_a_refund_not_succeeded_is_ignored_and_a_malformed_one_is_422(client, db, order):
    pending = stripe_event("refund.created", refund("pi_abc", 1000, status="pending"))
    assert "pending" in deliver_stripe(client, pending).json()["reason"]

    malformed = stripe_event("refund.created", {**refund("pi_abc", 1000), "id": "ch_123"})
    body = problem(deliver_stripe(client, malformed), 422, "validation_error")
    assert body["errors"][0]["loc"] == ["body", "data", "object", "id"]


def test_a_malformed_payment_intent_is_422_and_malformed_json_400(client, db, order):
    intent = payment_intent(order)
    del intent["amount"]
    body = problem(
        deliver_stripe(client, stripe_event("payment_intent.succeeded", intent)),
        422,
        "validation_error",
    )
    assert body["errors"][0]["loc"] == ["body", "data", "object", "amount"]
    problem(
        deliver_stripe(client, b'{"id": "evt_1", "id": "evt_2"}', check_with_stripe=False),
        400,
        "bad_request",
    )
    not_an_event = json.dumps({"id": "evt_1", "object": "charge", "type": "x", "data": {}})
    problem(deliver_stripe(client, not_an_event.encode()), 422, "validation_error")


def test_a_stripe_event_id_and_a_payment_webhook_event_id_never_collide(client, db, mug):
    """The same id through both doors is two events: each applies to its own order."""
    first, second = make_order(db, (mug, 1)), make_order(db, (mug, 1))
    shared = "evt_1NfGsL2eZvKYlo2Cshared"

    by_payment = deliver(client, event_body(first), event_id=shared)
    by_stripe = deliver_stripe(
        client, stripe_event("payment_intent.succeeded", payment_intent(second), event_id=shared)
    )

    assert by_payment.json()["duplicate"] is False and by_stripe.json()["duplicate"] is False
    assert (order_status(db, first.id), order_status(db, second.id)) == ("PAID", "PAID")
    assert sorted(e.provider for e in payment_events(db)) == ["payment", "stripe"]


# ---------------------------------------------------------------- verification, in order


def test_without_a_secret_it_is_503_and_changes_nothing(settings, engine, db, order):
    for client in _serve(settings, engine, None):
        problem(deliver_stripe(client, succeeded(order)), 503, "webhook_not_configured")
    assert order_status(db, order.id) == "PENDING"


def test_a_wrong_missing_or_malformed_signature_is_401(client, db, order):
    body = succeeded(order)
    now = int(time.time())
    wrong = deliver_stripe(client, body, secret="whsec_not_the_endpoints_secret")
    problem(wrong, 401, "invalid_signature")
    for header in ["", f"t={now}", "v1=" + "ab" * 32, f"t=x,v1={'ab' * 32}", f"t={now},v0=ab"]:
        sent = client.post(STRIPE_URL, content=body, headers={"Stripe-Signature": header})
        problem(sent, 401, "invalid_signature")
    # A whsec_ secret is its UTF-8 bytes, as Stripe uses it, not the base64 it looks like.
    key = base64.b64decode(STRIPE_SECRET[6:] + "=" * (-len(STRIPE_SECRET[6:]) % 4))
    decoded = hmac.new(key, f"{now}.".encode() + body, hashlib.sha256).hexdigest()
    problem(
        deliver_stripe(client, body, header=f"t={now},v1={decoded}", check_with_stripe=False),
        401,
        "invalid_signature",
    )
    assert order_status(db, order.id) == "PENDING"


def test_a_stale_or_future_timestamp_is_401_after_the_signature(client, db, order):
    body = succeeded(order)
    old, future = int(time.time()) - 301, int(time.time()) + 301
    for timestamp in (old, future):
        sent = deliver_stripe(client, body, timestamp=timestamp, check_with_stripe=False)
        problem(sent, 401, "stale_timestamp")
    # A wrong signature on a stale delivery is a bad signature first.
    wrong = deliver_stripe(
        client, body, secret="whsec_wrong", timestamp=old, check_with_stripe=False
    )
    problem(wrong, 401, "invalid_signature")
    assert order_status(db, order.id) == "PENDING"


def test_a_body_over_64_kib_is_413_before_its_signature_is_checked(client, db, order):
    body = stripe_event(
        "charge.succeeded", {"id": "ch_1", "object": "charge", "description": "x" * 70_000}
    )
    problem(
        deliver_stripe(client, body, secret="whsec_wrong", check_with_stripe=False),
        413,
        "payload_too_large",
    )
