"""Push deliveries against real servers: a receiver on 127.0.0.1 verifies every delivery with
the Standard Webhooks reference library. Both engines; several workers; crashes."""

import itertools
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import Any

import httpx
import pytest

from app.events import delivery
from tests.support.event_receiver import Answer, Received, Receiver, SilentReceiver, subscribe
from tests.support.live_server import LiveServer

pytestmark = pytest.mark.live
ServerFactory = Callable[..., AbstractContextManager[LiveServer]]
FAST = {
    "EVENT_ALLOW_PRIVATE_URLS": "true",
    "EVENT_RETRY_BASE_SECONDS": "0.2",
    "EVENT_DELIVERY_TIMEOUT_SECONDS": "1",
}
_skus = itertools.count(1)


@contextmanager
def running(
    live_server: ServerFactory, receiver: Receiver, workers: int = 1, **env: str
) -> Iterator[tuple[LiveServer, httpx.Client]]:
    with receiver.running(), live_server(workers=workers, env={**FAST, **env}) as server:
        with httpx.Client(base_url=server.base_url, timeout=30) as api:
            yield server, api


def product(api: httpx.Client, stock: int = 1000) -> int:
    body = {"sku": f"EVD-{next(_skus)}", "name": "Mug", "price": "5.00", "stock": stock}
    response = api.post("/products", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def place(api: httpx.Client, product_id: int) -> dict[str, Any]:
    response = api.post("/orders", json={"product_id": product_id, "quantity": 1})
    assert response.status_code == 201, response.text
    return response.json()


def all_events(api: httpx.Client, at_least: int = 0) -> list[dict[str, Any]]:
    """The whole feed, once it holds `at_least` events (on PostgreSQL a transaction open
    anywhere on the server holds new events back until it ends)."""
    deadline = time.monotonic() + 30
    while len(found := _walk(api)) < at_least and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def _walk(api: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    seen, after = [], None
    while True:
        page = api.get(
            "/events", params={"limit": 100, **params, **({"after": after} if after else {})}
        )
        assert page.status_code == 200, page.text
        seen += page.json()["items"]
        after = page.json()["next"]
        if len(page.json()["items"]) < 100:
            return seen


def deliveries(api: httpx.Client, subscription_id: int) -> list[dict[str, Any]]:
    response = api.get(f"/event-subscriptions/{subscription_id}/deliveries", params={"limit": 100})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def settled(api: httpx.Client, subscription_id: int, count: int, timeout: float = 60) -> list:
    """The subscription's deliveries once `count` of them are delivered or failed."""
    deadline = time.monotonic() + timeout
    while True:
        found = deliveries(api, subscription_id)
        done = [d for d in found if d["status"] != "pending"]
        if len(done) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_each_event_reaches_each_matching_subscription_once_signed_at_4_workers(
    live_server: ServerFactory,
):
    receiver = Receiver()
    with running(live_server, receiver, workers=4) as (_, api):
        mug = product(api)
        before = place(api, mug)  # before any subscription: never pushed
        everything = subscribe(api, receiver, "/all", ["*"])
        paid_only = subscribe(api, receiver, "/paid", ["order.paid"])
        with ThreadPoolExecutor(8) as pool:
            orders = list(pool.map(lambda _: place(api, mug), range(24)))
            list(
                pool.map(
                    lambda o: api.put(f"/orders/{o['id']}", json={"status": "PAID"}), orders[:12]
                )
            )
        # The product's own product.created (before any subscription) is no order's event.
        events = [e for e in all_events(api, at_least=38) if "order" in e["data"]]
        expected = [e for e in events if e["data"]["order"]["id"] != before["id"]]
        assert len(expected) == 36
        paid = [e for e in expected if e["type"] == "order.paid"]

        assert receiver.wait_for(lambda: len(receiver.ids_at("/all")) >= 36)
        assert receiver.wait_for(lambda: len(receiver.ids_at("/paid")) >= 12)
        settled(api, everything["id"], 36)
        time.sleep(1.5)  # a duplicate send would land by now

    got_all, got_paid = receiver.at("/all"), receiver.at("/paid")
    assert all(r.verified for r in got_all + got_paid)
    assert receiver.ids_at("/all") == {e["id"]: 1 for e in expected}
    assert receiver.ids_at("/paid") == {e["id"]: 1 for e in paid}
    by_id = {e["id"]: e for e in expected}
    assert all(r.event == by_id[r.webhook_id] for r in got_all)  # the body is the event
    assert paid_only["id"] != everything["id"]


def test_failed_attempts_are_retried_after_500s_and_timeouts_with_the_same_webhook_id(
    live_server: ServerFactory,
):
    def flaky(received: Received) -> Answer:
        if received.nth == 1:
            return Answer(500)
        if received.nth == 2:
            return Answer(200, hold_seconds=2.5)  # past the 1 s delivery timeout
        return Answer(200)

    receiver = Receiver(flaky)
    with running(live_server, receiver, workers=2) as (_, api):
        subscription = subscribe(api, receiver, "/flaky", ["order.created"])
        mug = product(api)
        orders = [place(api, mug) for _ in range(3)]
        found = settled(api, subscription["id"], 3)

    assert [d["status"] for d in found] == ["delivered"] * 3
    assert [d["attempt"] for d in found] == [3, 3, 3]
    assert all(d["response_status"] == 200 and d["next_attempt_at"] is None for d in found)
    counts = receiver.ids_at("/flaky")
    assert sorted(counts.values()) == [3, 3, 3]
    assert all(r.verified for r in receiver.at("/flaky"))
    created = {r.event["data"]["order"]["id"] for r in receiver.at("/flaky") if r.event}
    assert created == {o["id"] for o in orders}


def test_a_delivery_that_keeps_failing_is_marked_failed_after_the_last_attempt(
    live_server: ServerFactory,
):
    receiver = Receiver(lambda _: Answer(503))
    with running(live_server, receiver, EVENT_MAX_ATTEMPTS="3") as (_, api):
        subscription = subscribe(api, receiver, "/down", ["order.created"])
        place(api, product(api))
        (delivery,) = settled(api, subscription["id"], 1)
        time.sleep(1.0)
        metrics = api.get("/metrics").text

    assert delivery["status"] == "failed" and delivery["attempt"] == 3
    assert delivery["response_status"] == 503 and delivery["error"].startswith("HTTP 503")
    assert delivery["next_attempt_at"] is None
    assert list(receiver.ids_at("/down").values()) == [3]
    assert 'event_deliveries_total{outcome="failed"} 1.0' in metrics
    assert 'event_delivery_attempts_total{result="http_error"} 3.0' in metrics


def test_nothing_is_sent_after_the_subscription_is_deleted(live_server: ServerFactory):
    receiver = Receiver()
    with running(live_server, receiver, workers=2) as (_, api):
        kept = subscribe(api, receiver, "/kept", ["*"])
        dropped = subscribe(api, receiver, "/dropped", ["*"])
        assert api.delete(f"/event-subscriptions/{dropped['id']}").status_code == 204
        mug = product(api)  # its product.created, then three order.created
        for _ in range(3):
            place(api, mug)
        settled(api, kept["id"], 4)
        time.sleep(1.5)  # past a poll of every worker

    assert len(receiver.ids_at("/kept")) == 4
    assert receiver.at("/dropped") == []


def test_only_matching_types_and_only_events_after_the_subscription(live_server: ServerFactory):
    receiver = Receiver()
    with running(live_server, receiver) as (_, api):
        mug = product(api)
        early = place(api, mug)
        api.delete(f"/orders/{early['id']}")
        canceled = subscribe(api, receiver, "/canceled", ["order.canceled"])
        late = place(api, mug)
        api.delete(f"/orders/{late['id']}")
        settled(api, canceled["id"], 1)
        time.sleep(1.0)

    got = receiver.at("/canceled")
    assert [r.event["type"] for r in got if r.event] == ["order.canceled"]
    assert got[0].event["data"]["order"]["id"] == late["id"]


def test_a_worker_killed_mid_delivery_leaves_it_to_be_sent_again_with_the_same_webhook_id(
    live_server: ServerFactory,
):
    first_arrived, release = threading.Event(), threading.Event()

    def hang_first(received: Received) -> Answer:
        if received.nth == 1:
            first_arrived.set()
            release.wait(30)  # the server is killed while this request is in flight
            return Answer(500)
        return Answer(200)

    receiver = Receiver(hang_first)
    # Lease = 2 x timeout + 5 s: the delivery may be taken again 9 s after it was claimed.
    with running(live_server, receiver, EVENT_DELIVERY_TIMEOUT_SECONDS="2") as (server, api):
        subscription = subscribe(api, receiver, "/crash", ["order.created"])
        order = place(api, product(api))
        assert first_arrived.wait(20)
        server.stop(signal.SIGKILL)
        release.set()
        server.start()
        assert receiver.wait_for(lambda: len(receiver.at("/crash")) >= 2, timeout=40)
        (delivery,) = settled(api, subscription["id"], 1)

    first, second = receiver.at("/crash")[:2]
    assert first.webhook_id == second.webhook_id == delivery["event_id"]
    assert second.verified and second.event["data"]["order"]["id"] == order["id"]
    assert delivery["status"] == "delivered" and delivery["attempt"] == 2


def test_graceful_shutdown_finishes_the_delivery_in_hand(live_server: ServerFactory):
    arrived = threading.Event()

    def slow(received: Received) -> Answer:
        arrived.set()
        return Answer(200, hold_seconds=0.5)

    receiver = Receiver(slow)
    with running(live_server, receiver, workers=2) as (server, api):
        subscription = subscribe(api, receiver, "/slow", ["order.created"])
        place(api, product(api))
        assert arrived.wait(20)
        server.stop(signal.SIGTERM)
        server.start()
        found = deliveries(api, subscription["id"])

    assert [(d["status"], d["attempt"]) for d in found] == [("delivered", 1)]
    assert len(receiver.at("/slow")) == 1


@contextmanager
def silent_subscribers(api: httpx.Client, count: int) -> Iterator[list[SilentReceiver]]:
    """`count` subscriptions to every event whose receivers accept and never answer; they
    close their connections on exit (before the server stops, so it need not wait them out)."""
    with ExitStack() as stack:
        silent = [stack.enter_context(SilentReceiver().running()) for _ in range(count)]
        for n, receiver in enumerate(silent):
            subscribe(api, receiver, f"/silent-{n}", ["*"])
        yield silent


def test_subscribers_that_never_answer_do_not_hold_back_another_subscribers_events(
    live_server: ServerFactory,
):
    receiver = Receiver()
    # The default delivery timeout: each silent delivery holds its slot for 10 s.
    with running(live_server, receiver, workers=2, EVENT_DELIVERY_TIMEOUT_SECONDS="10") as (
        _,
        api,
    ):
        with silent_subscribers(api, 3) as silent:
            healthy = subscribe(api, receiver, "/healthy", ["order.created"])
            mug = product(api)
            orders = [place(api, mug) for _ in range(12)]
            committed = time.monotonic()
            # Well within the 10 s timeout the silent receivers hold their deliveries for.
            got_all = receiver.wait_for(lambda: len(receiver.ids_at("/healthy")) >= 12, 5)
            waited = time.monotonic() - committed
            held = [len(s.connections) for s in silent]

        assert got_all, f"{len(receiver.ids_at('/healthy'))} of 12 events after {waited:.1f} s"
        found = settled(api, healthy["id"], 12, timeout=10)

    got = {r.event["data"]["order"]["id"] for r in receiver.at("/healthy") if r.event}
    assert got == {o["id"] for o in orders}
    assert [d["status"] for d in found] == ["delivered"] * 12
    # Each silent subscriber holds at most its share of each worker's slots.
    assert all(1 <= connections <= 2 * delivery.PER_SUBSCRIPTION for connections in held)


def test_retries_go_out_at_the_contracts_times_beside_subscribers_that_never_answer(
    live_server: ServerFactory,
):
    """500, 500, then 204: attempt 2 after base × 1, attempt 3 after base × 2 (less up to a
    quarter of jitter), base 1 s; receivers that never answer (10 s timeout) beside it."""

    def twice_500(received: Received) -> Answer:
        return Answer(500) if received.nth <= 2 else Answer(204, body_bytes=0)

    receiver = Receiver(twice_500)
    env = {"EVENT_DELIVERY_TIMEOUT_SECONDS": "10", "EVENT_RETRY_BASE_SECONDS": "1"}
    with running(live_server, receiver, workers=2, **env) as (_, api):
        with silent_subscribers(api, 3):
            flaky = subscribe(api, receiver, "/flaky", ["order.created", "order.paid"])
            order = place(api, product(api))
            assert api.put(f"/orders/{order['id']}", json={"status": "PAID"}).status_code == 200
            receiver.wait_for(lambda: len(receiver.at("/flaky")) >= 6, timeout=12)
        found = settled(api, flaky["id"], 2, timeout=10)

    assert sorted(d["status"] for d in found) == ["delivered", "delivered"]
    assert [d["attempt"] for d in found] == [3, 3]
    for webhook_id in receiver.ids_at("/flaky"):
        first, second, third = (r.at for r in receiver.at("/flaky") if r.webhook_id == webhook_id)
        # Not before the schedule; late by at most a poll and a busy machine's scheduling.
        assert 0.75 <= second - first <= 1 + 2.5
        assert 1.5 <= third - second <= 2 + 2.5


def test_an_answer_with_a_nul_byte_and_invalid_utf8_is_stored_and_the_delivery_settles(
    live_server: ServerFactory,
):
    receiver = Receiver(lambda _: Answer(500, body=b"bad\x00gateway \xff\xfe"))
    with running(live_server, receiver, EVENT_MAX_ATTEMPTS="2") as (_, api):
        subscription = subscribe(api, receiver, "/nul", ["order.created"])
        place(api, product(api))
        found = settled(api, subscription["id"], 1, timeout=20)
        time.sleep(1.5)  # a send past the last attempt would land by now

    (delivery,) = found
    assert delivery["status"] == "failed" and delivery["attempt"] == 2, delivery
    assert delivery["error"] == "HTTP 500: bad\ufffdgateway \ufffd\ufffd"
    assert len(receiver.at("/nul")) == 2
