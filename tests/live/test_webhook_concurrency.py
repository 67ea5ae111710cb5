"""Exactly-once under a race: one event delivered 20 times at once to a 4-worker server, on each
engine, through either door (/webhooks/payment, /webhooks/stripe)."""

import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import create_engine, func
from sqlmodel import Session, select

from app import signing
from app.tables import PaymentEvent
from tests.live.test_webhook import WEBHOOK, WebhookApi, payment
from tests.support.databases import ENGINES, database_url
from tests.support.live_server import LiveServer
from tests.support.stripe_events import STRIPE_SECRET, STRIPE_URL, failed, stripe_header, succeeded

SECRET = "race-webhook-secret"
DELIVERIES = 20


def _deliver_at_once(
    base_url: str, body: bytes, headers: dict[str, str], path: str = WEBHOOK
) -> list[httpx.Response]:
    barrier = threading.Barrier(DELIVERIES)

    def send(_: int) -> httpx.Response:
        barrier.wait(timeout=30)
        return httpx.post(
            base_url + path,
            content=body,
            timeout=60,
            headers={"Content-Type": "application/json", **headers},
        )

    with ThreadPoolExecutor(DELIVERIES) as pool:
        return list(pool.map(send, range(DELIVERIES)))


def _recorded(database_url: str, event_id: str) -> int:
    engine = create_engine(database_url, hide_parameters=True)
    try:
        with Session(engine) as session:
            return session.exec(
                select(func.count())
                .select_from(PaymentEvent)
                .where(PaymentEvent.event_id == event_id)
            ).one()
    finally:
        engine.dispose()


@pytest.fixture(scope="module", params=ENGINES)
def server(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[LiveServer]:
    """One 4-worker server per engine for both event types: each test races its own order."""
    tmp = tmp_path_factory.mktemp(f"webhook-race-{request.param}")
    with (
        database_url(request.param, tmp) as url,
        LiveServer(
            url,
            workers=4,
            env={"WEBHOOK_SECRET": SECRET, "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET},
            log_path=tmp / "server.log",
        ) as live,
    ):
        yield live


@pytest.mark.live
@pytest.mark.parametrize("event_type", ["payment.failed", "payment.succeeded"])
def test_concurrent_deliveries_of_one_event_apply_it_exactly_once(server: LiveServer, event_type):
    api = WebhookApi(server.base_url, [SECRET], os.environ.get("API_KEY"))
    order = api.create_order(price="5.00", quantity=3)  # stock 10 -> 7
    product_id = order["items"][0]["product_id"]
    body, event_id = payment(order, event_type), f"evt_race_{order['id']}"
    headers = signing.signed_headers([SECRET], event_id, int(time.time()), body)

    responses = _deliver_at_once(server.base_url, body, headers)

    assert [r.status_code for r in responses] == [200] * DELIVERIES, [
        r.text for r in responses if r.status_code != 200
    ]
    firsts = [r.json() for r in responses if r.json()["duplicate"] is False]
    assert len(firsts) == 1, firsts
    expected = "CANCELED" if event_type == "payment.failed" else "PAID"
    assert {r.json()["order_status"] for r in responses} == {expected}
    assert api.status(order) == expected
    stock = api.http.get(f"/products/{product_id}", headers=api.auth).json()["stock"]
    assert stock == (10 if event_type == "payment.failed" else 7)
    assert _recorded(server.database_url, event_id) == 1


@pytest.mark.live
@pytest.mark.parametrize(
    "event_type", ["payment_intent.payment_failed", "payment_intent.succeeded"]
)
def test_concurrent_deliveries_of_one_stripe_event_apply_it_exactly_once(
    server: LiveServer, event_type
):
    api = WebhookApi(server.base_url, [SECRET], os.environ.get("API_KEY"))
    order = api.create_order(price="5.00", quantity=3)  # stock 10 -> 7
    product_id = order["items"][0]["product_id"]
    body = (succeeded if event_type == "payment_intent.succeeded" else failed)(order)
    headers = {"Stripe-Signature": stripe_header(body, [STRIPE_SECRET])}

    responses = _deliver_at_once(server.base_url, body, headers, STRIPE_URL)

    assert [r.status_code for r in responses] == [200] * DELIVERIES, [
        r.text for r in responses if r.status_code != 200
    ]
    assert len([r for r in responses if r.json()["duplicate"] is False]) == 1
    expected = "CANCELED" if event_type.endswith("failed") else "PAID"
    assert api.status(order) == expected
    stock = api.http.get(f"/products/{product_id}", headers=api.auth).json()["stock"]
    assert stock == (10 if expected == "CANCELED" else 7)
    assert _recorded(server.database_url, responses[0].json()["event_id"]) == 1
