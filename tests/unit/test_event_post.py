"""One delivery attempt (`delivery.post`, app/events/delivery.py) against a receiver on 127.0.0.1:
signed the Standard Webhooks way, bounded in time and in what it reads, no redirects followed, and
checked against the address rules at the moment it is sent."""

import asyncio
import random
import time

import httpx
import pytest

from app.core.config import Settings
from app.events import delivery, url_safety
from app.events.subscriptions import new_secret
from tests.support.event_receiver import Answer, Receiver

EVENT = {
    "id": "evt_0123456789abcdef01234567",
    "type": "order.paid",
    "created_at": "2026-11-27T09:00:00Z",
    "data": {"order": {"id": 7, "status": "PAID", "total": "12.50"}},
}


def settings(**overrides: object) -> Settings:
    values = {"event_allow_private_urls": True, "event_delivery_timeout_seconds": 1.0}
    return Settings(_env_file=None, app_env="test", **{**values, **overrides})


def attempt(
    receiver: Receiver, path: str = "/in", traceparent: str | None = None, **overrides: object
) -> delivery.Result:
    secret = new_secret()
    receiver.secrets[path] = secret
    job = delivery.Job(1, 1, "token", EVENT, receiver.url(path), secret)

    async def run() -> delivery.Result:
        async with httpx.AsyncClient(follow_redirects=False, trust_env=False) as client:
            return await delivery.post(client, job, settings(**overrides), None, traceparent)

    return asyncio.run(run())


def test_a_2xx_delivers_and_the_receiver_verifies_it_with_standardwebhooks():
    receiver = Receiver(lambda _: Answer(204, body_bytes=0))
    with receiver.running():
        result = attempt(receiver)

    assert result.result == "success" and result.response_status == 204
    (received,) = receiver.at("/in")
    assert received.verified and received.webhook_id == EVENT["id"]
    assert received.event == EVENT


def test_a_traceparent_given_is_sent_as_it_is_and_none_is_sent_without_one():
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    receiver = Receiver()
    with receiver.running():
        attempt(receiver, "/traced", traceparent)
        attempt(receiver, "/plain")

    (traced,) = receiver.at("/traced")
    (plain,) = receiver.at("/plain")
    assert traced.verified and traced.headers["traceparent"] == traceparent
    assert plain.verified and "traceparent" not in plain.headers


def test_a_non_2xx_is_an_http_error_with_the_start_of_the_answer():
    receiver = Receiver(lambda _: Answer(500, body_bytes=10))
    with receiver.running():
        result = attempt(receiver)

    assert result.result == "http_error" and result.response_status == 500
    assert result.error == "HTTP 500: xxxxxxxxxx"


def test_a_redirect_is_not_followed():
    receiver = Receiver(
        lambda r: Answer(302, location="/elsewhere") if r.path == "/in" else Answer()
    )
    with receiver.running():
        result = attempt(receiver)

    assert result.result == "http_error" and result.response_status == 302
    assert receiver.at("/elsewhere") == []


def test_a_slow_receiver_is_cut_off_at_the_timeout():
    receiver = Receiver(lambda _: Answer(200, hold_seconds=3))
    with receiver.running():
        started = time.monotonic()
        result = attempt(receiver, event_delivery_timeout_seconds=0.5)
        elapsed = time.monotonic() - started

    assert result.result == "timeout"
    assert elapsed < 2.5  # well before the receiver answers (3 s): the attempt gave up


def test_a_huge_answer_is_read_only_in_part():
    receiver = Receiver(lambda _: Answer(200, body_bytes=50_000_000))
    with receiver.running():
        result = attempt(receiver, event_delivery_timeout_seconds=5)

    assert result.result == "success"


def test_a_private_url_is_refused_at_delivery_and_nothing_is_sent():
    receiver = Receiver()
    with receiver.running():
        result = attempt(receiver, event_allow_private_urls=False)

    assert result.result == "url_not_allowed"
    assert "127.0.0.1" in (result.error or "")
    assert receiver.received == []


def test_a_name_rebound_to_loopback_is_refused_at_delivery(monkeypatch: pytest.MonkeyPatch):
    async def rebound(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]  # was public when subscribed; points home now

    monkeypatch.setattr(url_safety, "system_resolver", rebound)
    receiver = Receiver()
    with receiver.running():
        secret = new_secret()
        url = f"http://hooks.example:{receiver.port}/in"
        job = delivery.Job(1, 1, "token", EVENT, url, secret)

        async def run() -> delivery.Result:
            async with httpx.AsyncClient(trust_env=False) as client:
                return await delivery.post(client, job, settings(event_allow_private_urls=False))

        result = asyncio.run(run())

    assert result.result == "url_not_allowed"
    assert receiver.received == []


def test_the_connection_goes_to_the_checked_address_with_the_name_as_host(
    monkeypatch: pytest.MonkeyPatch,
):
    async def resolve(host: str, port: int) -> list[str]:
        assert host == "receiver.test"
        return ["127.0.0.1"]

    monkeypatch.setattr(url_safety, "system_resolver", resolve)
    hosts: list[str] = []
    receiver = Receiver()
    with receiver.running():
        receiver.behaviour = lambda r: Answer()
        secret = new_secret()
        receiver.secrets["/in"] = secret
        job = delivery.Job(1, 1, "token", EVENT, f"http://receiver.test:{receiver.port}/in", secret)

        async def run() -> delivery.Result:
            async def capture(request: httpx.Request) -> None:
                hosts.append(request.headers["host"])

            async with httpx.AsyncClient(
                trust_env=False, event_hooks={"request": [capture]}
            ) as client:
                return await delivery.post(client, job, settings())

        result = asyncio.run(run())

    assert result.result == "success"
    assert hosts == [f"receiver.test:{receiver.port}"]
    assert receiver.at("/in")[0].verified


def test_retry_delays_double_from_the_base_with_jitter_and_stop_at_an_hour():
    rng = random.Random(7)
    delays = [delivery.retry_delay(n, 10, rng) for n in range(1, 14)]

    for attempt_number, delay in enumerate(delays, start=1):
        full = min(3600, 10 * 2 ** (attempt_number - 1))
        assert 0.75 * full <= delay <= full
    assert max(delays) <= 3600
    assert len({round(d, 6) for d in delays}) == len(delays)  # jittered, not a fixed ladder


def test_the_job_never_shows_its_secret():
    job = delivery.Job(1, 1, "token", EVENT, "http://127.0.0.1:9/", "whsec_c2VjcmV0")

    assert "whsec_" not in repr(job)


def test_an_internationalised_host_is_delivered_to_under_its_idna_form(
    monkeypatch: pytest.MonkeyPatch,
):
    looked_up: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        looked_up.append(host)
        return ["127.0.0.1"]

    monkeypatch.setattr(url_safety, "system_resolver", resolve)
    hosts: list[str] = []
    receiver = Receiver()
    with receiver.running():
        secret = new_secret()
        receiver.secrets["/in"] = secret
        url = f"http://b\u00fccher.test:{receiver.port}/in"
        job = delivery.Job(1, 1, "token", EVENT, url, secret)

        async def run() -> delivery.Result:
            async def capture(request: httpx.Request) -> None:
                hosts.append(request.headers["host"])

            async with httpx.AsyncClient(
                trust_env=False, event_hooks={"request": [capture]}
            ) as client:
                return await delivery.post(client, job, settings())

        result = asyncio.run(run())

    assert result.result == "success", result.error
    assert looked_up == ["xn--bcher-kva.test"]
    assert hosts == [f"xn--bcher-kva.test:{receiver.port}"]
    assert receiver.at("/in")[0].verified


@pytest.mark.parametrize(
    "body",
    [b"bad\x00gateway", b"bad \xff\xfe gateway", b"bad\x1b[31m gateway", b"\xed\xa0\x80 x" * 2000],
)
def test_whatever_a_receiver_answers_becomes_storable_text(body: bytes):
    receiver = Receiver(lambda _: Answer(502, body=body))
    with receiver.running():
        result = attempt(receiver)

    assert result.result == "http_error" and result.response_status == 502
    error = result.error or ""
    assert error.startswith("HTTP 502: ") and len(error) <= 500
    assert error.isprintable()  # no NUL (PostgreSQL refuses it), no control character
    error.encode("utf-8")  # no lone surrogate: valid UTF-8 on every engine
