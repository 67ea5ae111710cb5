"""POST /webhooks/payment over HTTP (TestClient, both engines), with the database checked after."""

import json
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine

from app import signing
from app.core.config import Settings
from app.main import create_app
from tests.support.factories import Db, Record, make_order, make_product
from tests.support.webhooks import (
    NEXT_SECRET,
    SECRET,
    URL,
    current_order,
    deliver,
    event_body,
    order_status,
    payment_events,
    stock_of,
)


def _client(settings: Settings, engine: Engine, secret: str | None) -> TestClient:
    """A client of the app with `secret`; its lifespan (which disposes `engine`) is not run."""
    configured = settings.model_copy(
        update={"webhook_secret": SecretStr(secret) if secret else None}
    )
    return TestClient(create_app(configured, engine))


@pytest.fixture
def client(settings: Settings, engine: Engine) -> TestClient:
    """The app with two webhook secrets configured, as during a rotation."""
    return _client(settings, engine, f"{SECRET},{NEXT_SECRET}")


@pytest.fixture
def mug(db: Db) -> Record:
    return make_product(db, price="19.99", stock=10)


@pytest.fixture
def order(db: Db, mug: Record) -> Record:
    return make_order(db, (mug, 2))  # total 39.98, stock 10 -> 8


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code
    return body


def assert_untouched(db: Db, order: Record, mug: Record) -> None:
    assert order_status(db, order.id) == "PENDING"
    assert stock_of(db, mug.id) == 8
    assert payment_events(db) == []


# ---------------------------------------------------------------- first processing and repeats


def test_payment_succeeded_marks_the_order_paid_and_records_the_event(client, db, order, mug):
    body = event_body(order, amount="39.98", payment_id="pay_123")

    response = deliver(client, body, event_id="evt_ok", timestamp=int(time.time()))

    assert response.status_code == 200
    assert response.json() == {
        "event_id": "evt_ok",
        "duplicate": False,
        "order_id": order.id,
        "order_status": "PAID",
    }
    assert order_status(db, order.id) == "PAID"
    assert stock_of(db, mug.id) == 8
    [event] = payment_events(db)
    assert (event.event_id, event.order_id, event.type, event.payment_id, event.amount_cents) == (
        "evt_ok",
        order.id,
        "payment.succeeded",
        "pay_123",
        3998,
    )
    assert event.raw_body.encode() == body


def test_payment_succeeded_accepts_the_amount_as_a_json_number(client, db, order):
    response = deliver(client, event_body(order, amount=39.98))
    assert response.json()["order_status"] == "PAID"
    assert order_status(db, order.id) == "PAID"


def test_repeated_event_is_a_duplicate_and_changes_nothing(client, db, order):
    body = event_body(order)
    deliver(client, body, event_id="evt_twice")
    paid_at = current_order(db, order.id).updated_at

    response = deliver(client, body, event_id="evt_twice")

    assert response.status_code == 200
    assert response.json() == {
        "event_id": "evt_twice",
        "duplicate": True,
        "order_id": order.id,
        "order_status": "PAID",
    }
    assert current_order(db, order.id).updated_at == paid_at
    assert len(payment_events(db)) == 1


def test_payment_failed_cancels_and_releases_stock_once_even_when_repeated(client, db, order, mug):
    body = event_body(order, "payment.failed")

    first = deliver(client, body, event_id="evt_fail")
    again = deliver(client, body, event_id="evt_fail")

    assert first.json() == {
        "event_id": "evt_fail",
        "duplicate": False,
        "order_id": order.id,
        "order_status": "CANCELED",
    }
    assert again.json()["duplicate"] is True
    assert again.json()["order_status"] == "CANCELED"
    assert order_status(db, order.id) == "CANCELED"
    assert stock_of(db, mug.id) == 10
    assert [event.type for event in payment_events(db)] == ["payment.failed"]


def test_second_success_event_for_a_paid_order_is_a_no_op(client, db, order, mug):
    deliver(client, event_body(order, payment_id="pay_1"))

    response = deliver(client, event_body(order, payment_id="pay_1"), event_id="evt_other")

    assert response.status_code == 200
    assert response.json()["duplicate"] is False
    assert response.json()["order_status"] == "PAID"
    assert order_status(db, order.id) == "PAID"
    assert stock_of(db, mug.id) == 8
    assert len(payment_events(db)) == 2


def test_standard_webhooks_headers_are_accepted(db, settings, engine, order):
    whsec = "whsec_c2VjcmV0LWtleS1ieXRlcw=="
    client = _client(settings, engine, whsec)
    body = event_body(order)
    timestamp = int(time.time())
    headers = {
        "webhook-id": "msg_std",
        "webhook-timestamp": str(timestamp),
        "webhook-signature": _library_signature(whsec, "msg_std", timestamp, body),
        "Content-Type": "application/json",
    }
    response = client.post(URL, content=body, headers=headers)
    assert response.json()["event_id"] == "msg_std"
    assert order_status(db, order.id) == "PAID"


def _library_signature(secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    from datetime import UTC, datetime

    from standardwebhooks.webhooks import Webhook

    return Webhook(secret).sign(event_id, datetime.fromtimestamp(timestamp, UTC), body.decode())


# ---------------------------------------------------------------- signature and timestamp


@pytest.mark.parametrize("secret", [SECRET, NEXT_SECRET])
def test_either_secret_verifies_during_rotation(client, db, order, secret):
    assert deliver(client, event_body(order), secret=secret).status_code == 200
    assert order_status(db, order.id) == "PAID"


def test_wrong_signature_is_401_and_changes_nothing(client, db, order, mug):
    assert_problem(
        deliver(client, event_body(order), secret="not-the-secret"), 401, "invalid_signature"
    )
    assert_untouched(db, order, mug)


def test_no_signing_headers_at_all_is_401(client, db, order, mug):
    response = client.post(
        URL, content=event_body(order), headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 401, "invalid_signature")
    assert_untouched(db, order, mug)


@pytest.mark.parametrize("missing", ["X-Event-Id", "X-Webhook-Timestamp", "X-Webhook-Signature"])
def test_any_missing_signing_header_is_401(client, db, order, mug, missing):
    body = event_body(order)
    headers = signing.signed_headers([SECRET], "evt_1", int(time.time()), body)
    del headers[missing]
    assert_problem(client.post(URL, content=body, headers=headers), 401, "invalid_signature")
    assert_untouched(db, order, mug)


def test_malformed_signature_header_is_401(client, db, order, mug):
    response = deliver(client, event_body(order), headers={"X-Webhook-Signature": "sha256=xyz"})
    assert_problem(response, 401, "invalid_signature")
    assert_untouched(db, order, mug)


def test_captured_body_replayed_under_a_new_event_id_is_refused(client, db, order, mug):
    body = event_body(order, "payment.failed")
    captured = signing.signed_headers([SECRET], "evt_real", int(time.time()), body)
    forged = {**captured, "X-Event-Id": "evt_forged"}

    assert_problem(client.post(URL, content=body, headers=forged), 401, "invalid_signature")
    assert_untouched(db, order, mug)


@pytest.mark.parametrize("age", [330, 3600, -330])  # margins: the clock moves on
def test_timestamp_outside_the_tolerance_is_stale(client, db, order, mug, age):
    response = deliver(client, event_body(order), timestamp=int(time.time()) - age)
    assert_problem(response, 401, "stale_timestamp")
    assert_untouched(db, order, mug)


def test_bad_signature_wins_over_stale_timestamp(client, order):
    response = deliver(client, event_body(order), secret="wrong", timestamp=1)
    assert_problem(response, 401, "invalid_signature")


# ---------------------------------------------------------------- the body and the order


def test_amount_mismatch_is_422_and_the_retry_is_judged_afresh(client, db, order, mug):
    body = assert_problem(
        deliver(client, event_body(order, amount="39.97"), event_id="evt_amt"),
        422,
        "amount_mismatch",
    )
    assert (body["amount"], body["total"]) == ("39.97", "39.98")
    assert_untouched(db, order, mug)

    retry = deliver(client, event_body(order, amount="39.98"), event_id="evt_amt")
    assert retry.json()["duplicate"] is False
    assert order_status(db, order.id) == "PAID"


def test_unknown_order_is_404_and_not_recorded(client, db, order, mug):
    body = json.dumps(
        {"type": "payment.succeeded", "order_id": 999_999, "amount": "1.00", "payment_id": "pay_x"}
    ).encode()
    assert_problem(deliver(client, body), 404, "order_not_found")
    assert_untouched(db, order, mug)


def test_payment_succeeded_for_a_canceled_order_is_409(client, db, order, mug):
    client.delete(f"/orders/{order.id}")
    body = assert_problem(deliver(client, event_body(order)), 409, "invalid_status_transition")
    assert (body["from"], body["to"]) == ("CANCELED", "PAID")
    assert order_status(db, order.id) == "CANCELED"
    assert stock_of(db, mug.id) == 10
    assert payment_events(db) == []


@pytest.mark.parametrize("earlier", ["PAID", "SHIPPED", "CANCELED"])
def test_payment_failed_for_an_order_not_pending_is_409(client, db, order, mug, earlier):
    for status in ("PAID", "SHIPPED") if earlier == "SHIPPED" else (earlier,):
        assert client.patch(f"/orders/{order.id}", json={"status": status}).status_code == 200
    stock = stock_of(db, mug.id)

    assert_problem(
        deliver(client, event_body(order, "payment.failed")), 409, "invalid_status_transition"
    )
    assert order_status(db, order.id) == earlier
    assert stock_of(db, mug.id) == stock
    assert payment_events(db) == []


@pytest.mark.parametrize(
    "override",
    [
        {"extra": "field"},
        {"type": "payment.refunded"},
        {"amount": "39.985"},
        {"amount": "-1"},
        {"amount": "abc"},
        {"order_id": "1"},
        {"order_id": 0},
        {"payment_id": ""},
        {"payment_id": "pay_\u0000x"},
    ],
)
def test_invalid_body_is_422(client, db, order, mug, override):
    assert_problem(deliver(client, event_body(order, **override)), 422, "validation_error")
    assert_untouched(db, order, mug)


def test_malformed_json_is_400(client, db, order, mug):
    assert_problem(deliver(client, b'{"type": "payment.succ'), 400, "bad_request")
    assert_untouched(db, order, mug)


def test_a_lone_surrogate_is_malformed_json_400(client, db, order, mug):
    assert_problem(deliver(client, event_body(order, payment_id="pay_\ud800")), 400, "bad_request")
    assert_untouched(db, order, mug)


def test_duplicate_object_keys_are_400(client, db, order, mug):
    body = event_body(order)[:-1] + b', "order_id": 424242}'
    assert_problem(deliver(client, body), 400, "bad_request")
    assert_untouched(db, order, mug)


def test_a_repeated_event_id_is_a_duplicate_even_when_its_new_body_names_no_order(
    client, db, order
):
    assert deliver(client, event_body(order), event_id="evt_seen").status_code == 200

    again = deliver(client, event_body(order, order_id=424242), event_id="evt_seen")

    assert again.status_code == 200
    assert again.json() == {
        "event_id": "evt_seen",
        "duplicate": True,
        "order_id": order.id,
        "order_status": "PAID",
    }
    assert len(payment_events(db)) == 1


# ---------------------------------------------------------------- size and configuration


def test_body_over_64_kib_is_413_by_content_length(client, db, order, mug):
    body = event_body(order, payment_id="p" * 255) + b" " * (64 * 1024)
    assert_problem(deliver(client, body), 413, "payload_too_large")
    assert_untouched(db, order, mug)


def test_streamed_body_over_64_kib_is_413_without_being_read_whole(client, db, order, mug):
    sent = []

    def chunks() -> Iterator[bytes]:
        for _ in range(1000):  # 8 MB offered; the server stops reading past 64 KiB
            sent.append(8192)
            yield b" " * 8192

    response = client.post(
        URL,
        content=chunks(),
        headers=signing.signed_headers([SECRET], "evt_big", int(time.time()), b""),
    )
    assert response.request.headers.get("content-length") is None
    assert_problem(response, 413, "payload_too_large")
    assert_untouched(db, order, mug)


def test_body_of_exactly_64_kib_is_read(client, db, order):
    body = event_body(order)
    body += b" " * (64 * 1024 - len(body))
    assert deliver(client, body).status_code == 200


def test_without_a_secret_the_webhook_is_503_and_changes_nothing(settings, engine, db, order, mug):
    client = _client(settings, engine, None)
    assert_problem(deliver(client, event_body(order)), 503, "webhook_not_configured")
    assert_untouched(db, order, mug)


def test_openapi_documents_the_webhook_headers_and_errors(client):
    operation = client.get("/openapi.json").json()["paths"][URL]["post"]
    header_names = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
    assert header_names == {"x-event-id", "x-webhook-timestamp", "x-webhook-signature"}
    assert operation["tags"] == ["webhooks"]
    assert {"401", "409", "413", "422", "503"} <= set(operation["responses"])
    assert (
        "amount" in operation["requestBody"]["content"]["application/json"]["schema"]["properties"]
    )
