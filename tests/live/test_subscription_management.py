"""Managing subscriptions against a real server and a real receiver on 127.0.0.1, which
verifies every delivery with the Standard Webhooks reference library. Both engines.

One server per engine walks through: a rotated secret's overlap (two signatures, each verifying
with its own secret), a paused subscription (sent nothing, nothing queued), a failed delivery
sent again (same webhook-id), and a test ping (signed, not stored)."""

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.support.event_receiver import Answer, Received, Receiver, subscribe
from tests.support.live_server import LiveServer

pytestmark = pytest.mark.live
ServerFactory = Callable[..., AbstractContextManager[LiveServer]]
ENV = {
    "EVENT_ALLOW_PRIVATE_URLS": "true",
    "EVENT_RETRY_BASE_SECONDS": "0.2",
    "EVENT_DELIVERY_TIMEOUT_SECONDS": "2",
    "EVENT_MAX_ATTEMPTS": "1",  # a 500 fails a delivery at once
}


def answer(received: Received) -> Answer:
    # /flaky refuses the first request of each event, and takes the next.
    return Answer(500 if received.path == "/flaky" and received.nth == 1 else 200)


def deliveries(api: httpx.Client, subscription: dict[str, Any]) -> list[dict[str, Any]]:
    response = api.get(f"/event-subscriptions/{subscription['id']}/deliveries")
    assert response.status_code == 200, response.text
    return response.json()["items"]


def until(condition: Callable[[], Any], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := condition()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def verifies(secret: str, received: Received) -> bool:
    try:
        Webhook(secret).verify(received.body, received.headers)
    except WebhookVerificationError:
        return False
    return True


def test_rotate_pause_retry_and_ping_against_a_real_receiver(live_server: ServerFactory):
    receiver = Receiver(answer)
    with receiver.running(), live_server(workers=1, env=ENV) as server:
        with httpx.Client(base_url=server.base_url, timeout=30) as api:
            rotating = subscribe(api, receiver, "/rotating", ["order.created"])
            paused = subscribe(api, receiver, "/paused", ["order.created"])
            flaky = subscribe(api, receiver, "/flaky", ["order.created"])

            rotated = api.post(
                f"/event-subscriptions/{rotating['id']}/rotate-secret",
                json={"expire_old_after_seconds": 600},
            )
            assert rotated.status_code == 200, rotated.text
            receiver.secrets["/rotating"] = rotated.json()["secret"]
            off = api.patch(f"/event-subscriptions/{paused['id']}", json={"enabled": False})
            assert off.status_code == 200 and off.json()["enabled"] is False

            product = api.post(
                "/products", json={"sku": "SUBS-1", "name": "Mug", "price": "5.00", "stock": 5}
            ).json()
            order = api.post("/orders", json={"product_id": product["id"], "quantity": 1})
            assert order.status_code == 201, order.text

            # The flaky receiver's delivery fails (one attempt allowed), the rotating one's lands.
            assert until(lambda: receiver.at("/rotating"))
            failed = until(lambda: [d for d in deliveries(api, flaky) if d["status"] == "failed"])
            assert failed, deliveries(api, flaky)
            retried = api.post(
                f"/event-subscriptions/{flaky['id']}/deliveries/{failed[0]['id']}/retry"
            )
            assert retried.status_code == 202, retried.text
            assert until(lambda: len(receiver.at("/flaky")) >= 2)
            redelivered = until(
                lambda: [d for d in deliveries(api, flaky) if d["status"] == "delivered"]
            )

            ping = api.post(f"/event-subscriptions/{rotating['id']}/test")
            assert until(lambda: len(receiver.at("/rotating")) >= 2)
            paused_log = deliveries(api, paused)
            on = api.patch(f"/event-subscriptions/{paused['id']}", json={"enabled": True})
            assert on.status_code == 200 and on.json()["enabled"] is True
            feed = api.get("/events", params={"limit": 100}).json()["items"]
            after_enabling = deliveries(api, paused)

    event_id = receiver.at("/rotating")[0].webhook_id
    # Two signatures during the overlap, each verifying with its own secret.
    overlap, pinged = receiver.at("/rotating")
    signatures = overlap.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    assert overlap.verified and verifies(rotating["secret"], overlap)
    assert verifies(rotated.json()["secret"], overlap)
    assert overlap.event is not None and overlap.event["type"] == "order.created"
    # Paused: sent nothing, and nothing queued for the event recorded meanwhile, even after.
    assert receiver.at("/paused") == [] and paused_log == [] and after_enabling == []
    # Sent again with the same webhook-id, and delivered.
    first, second = receiver.at("/flaky")[:2]
    assert first.webhook_id == second.webhook_id == event_id == failed[0]["event_id"]
    assert second.verified and (first.answered, second.answered) == (500, 200)
    assert [d["id"] for d in redelivered] == [failed[0]["id"]]
    # The ping: signed (both secrets, still in the overlap), answered, and not stored.
    assert ping.status_code == 200, ping.text
    assert ping.json()["delivered"] is True and ping.json()["response_status"] == 200
    assert pinged.verified and verifies(rotating["secret"], pinged)
    assert pinged.webhook_id == ping.json()["event_id"] and pinged.event is not None
    assert pinged.event["type"] == "ping"
    assert ping.json()["event_id"] not in {event["id"] for event in feed}
