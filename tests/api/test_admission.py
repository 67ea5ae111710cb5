"""Admission and time limits, driven through the ASGI interface: a bounded number of requests
at work, a short queue with a deadline, fast 503 `overloaded` beyond it, no work for a client
that left while it waited, and 408 for a body that does not arrive."""

import asyncio
import json
from typing import Any

import pytest
from sqlmodel import SQLModel

from app.core import metrics
from app.core.config import Settings
from app.db.connect import create_db_engine
from app.http.client_disconnect import client_gone
from app.http.request_queue import Admission
from app.main import create_app
from tests.support.databases import stamp_head


# Stands for uvicorn's request cycle: `receive` is its bound method, `disconnected` its flag.
class FakeCycle:
    def __init__(self, body: bytes = b"", stall: bool = False) -> None:
        self.disconnected = False
        self.messages: list[dict[str, Any]] = []
        if stall:
            self.messages = [{"type": "http.request", "body": body, "more_body": True}]
        elif body:
            self.messages = [{"type": "http.request", "body": body, "more_body": False}]
        self.sent: list[dict[str, Any]] = []
        self.never = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        if self.messages:
            return self.messages.pop(0)
        await self.never.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int | None:
        starts = [m for m in self.sent if m["type"] == "http.response.start"]
        return starts[0]["status"] if starts else None

    def json(self) -> dict[str, Any]:
        return json.loads(b"".join(m.get("body", b"") for m in self.sent[1:]))

    def header(self, name: bytes) -> bytes | None:
        return dict(self.sent[0]["headers"]).get(name)


def make_app(**settings: Any) -> Any:
    config = Settings(_env_file=None, app_env="test", database_url="sqlite://", **settings)
    engine = create_db_engine(config)
    SQLModel.metadata.create_all(engine)
    stamp_head(engine)
    app = create_app(config, engine)
    app.state.release = asyncio.Event()
    app.state.started = 0
    app.state.saw_gone = []

    @app.get("/slow")
    async def slow() -> dict[str, str]:
        app.state.started += 1
        gone = client_gone.get()
        app.state.saw_gone.append(gone is not None and not gone())
        await app.state.release.wait()
        return {"status": "done"}

    return app


def scope(path: str, method: str = "GET", headers: list[tuple[bytes, bytes]] | None = None):
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers or [(b"host", b"test")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }


async def call(app: Any, cycle: FakeCycle, request: dict[str, Any]) -> FakeCycle:
    await app(request, cycle.receive, cycle.send)
    return cycle


def refusals(reason: str) -> float:
    return metrics.HTTP_REFUSALS.labels(reason)._value.get()


def test_beyond_the_queue_requests_are_refused_at_once_with_retry_after() -> None:
    app = make_app(max_in_flight=2, max_queued=1, queue_timeout_seconds=30)

    async def run() -> tuple[list[FakeCycle], list[FakeCycle], FakeCycle]:
        working = [asyncio.create_task(call(app, FakeCycle(), scope("/slow"))) for _ in range(3)]
        await asyncio.sleep(0.05)  # two at work, one queued
        refused = [await call(app, FakeCycle(), scope("/slow")) for _ in range(2)]
        health = await call(app, FakeCycle(), scope("/healthz"))
        app.state.release.set()
        return list(await asyncio.gather(*working)), refused, health

    before = refusals("overloaded")
    served, refused, health = asyncio.run(run())
    assert [cycle.status for cycle in served] == [200, 200, 200]
    assert app.state.started == 3
    for cycle in refused:
        assert cycle.status == 503
        assert cycle.json()["code"] == "overloaded"
        assert cycle.header(b"retry-after") == b"1"
        assert cycle.header(b"content-type") == b"application/problem+json"
    assert health.status == 200, "the liveness probe is answered ahead of the queue"
    assert refusals("overloaded") - before == 2


def test_beyond_the_queue_a_request_is_refused_before_its_key_and_its_body() -> None:
    """Shedding costs the worker as little as it can: a request that would find the queue full
    is answered 503 at once, without waiting for its body or checking its key."""
    key = "overload-key-0123456789abcdef"
    app = make_app(
        max_in_flight=1,
        max_queued=0,
        queue_timeout_seconds=30,
        body_read_timeout_seconds=30,
        api_keys=key,
    )
    with_key = [(b"x-api-key", key.encode())]
    stalled_body = [(b"content-type", b"application/json"), (b"content-length", b"500")]

    async def run() -> tuple[FakeCycle, list[FakeCycle], FakeCycle]:
        working = asyncio.create_task(call(app, FakeCycle(), scope("/slow", headers=with_key)))
        await asyncio.sleep(0.05)  # the one turn taken, no room to wait
        refused = [
            # its body never comes: the refusal must not wait for it (30 s) nor answer 408
            FakeCycle(body=b'{"product_id": 1, ', stall=True),
            FakeCycle(),  # no key: overloaded, not 401, while the queue is full
        ]
        requests = [
            scope("/orders", "POST", with_key + stalled_body),
            scope("/slow"),
        ]
        for cycle, request in zip(refused, requests, strict=True):
            await asyncio.wait_for(call(app, cycle, request), 2)
        health = await call(app, FakeCycle(), scope("/healthz"))
        app.state.release.set()
        return await working, refused, health

    before = refusals("overloaded")
    served, refused, health = asyncio.run(run())
    assert served.status == 200
    assert app.state.started == 1
    for cycle in refused:
        assert cycle.status == 503
        assert cycle.json()["code"] == "overloaded"
        assert cycle.json()["request_id"] == cycle.header(b"x-request-id").decode()
        assert cycle.header(b"retry-after") == b"1"
        assert cycle.header(b"content-type") == b"application/problem+json"
    assert health.status == 200
    assert refusals("overloaded") - before == 2


def test_full_says_what_acquire_would_do_at_once() -> None:
    async def run() -> list[tuple[bool, bool]]:
        admission = Admission(limit=1, queue_limit=1, timeout=0.05)
        seen = []
        for _ in range(3):  # free; the turn taken (room to wait); the queue full as well
            full = admission.full()
            waiter = asyncio.create_task(admission.acquire())
            await asyncio.sleep(0)
            seen.append((full, waiter.done() and not waiter.result()))
        await asyncio.sleep(0.1)  # the one queued times out
        return seen

    assert asyncio.run(run()) == [(False, False), (False, False), (True, True)]


def test_a_request_queued_past_its_deadline_is_refused_without_running() -> None:
    app = make_app(max_in_flight=1, max_queued=10, queue_timeout_seconds=0.1)

    async def run() -> tuple[FakeCycle, FakeCycle]:
        first = asyncio.create_task(call(app, FakeCycle(), scope("/slow")))
        await asyncio.sleep(0.02)
        late = await call(app, FakeCycle(), scope("/slow"))
        app.state.release.set()
        return await first, late

    first, late = asyncio.run(run())
    assert (first.status, late.status) == (200, 503)
    assert late.json()["code"] == "overloaded"
    assert app.state.started == 1


def test_no_work_starts_for_a_client_that_left_while_it_waited() -> None:
    app = make_app(max_in_flight=1, max_queued=10, queue_timeout_seconds=30)
    leaver = FakeCycle()

    async def run() -> FakeCycle:
        first = asyncio.create_task(call(app, FakeCycle(), scope("/slow")))
        await asyncio.sleep(0.02)
        queued = asyncio.create_task(call(app, leaver, scope("/slow")))
        await asyncio.sleep(0.02)
        leaver.disconnected = True  # uvicorn sets this when the connection is lost
        app.state.release.set()
        await queued
        return await first

    before = refusals("client_gone")
    first = asyncio.run(run())
    assert first.status == 200
    assert app.state.started == 1, "the work of the client that left never started"
    assert leaver.sent == []
    assert refusals("client_gone") - before == 1
    assert app.state.saw_gone == [True], "the route saw a client_gone probe saying 'still here'"


def test_admission_hands_turns_over_in_arrival_order() -> None:
    admission = Admission(limit=1, queue_limit=5, timeout=5)
    order: list[int] = []

    async def worker(n: int) -> None:
        assert await admission.acquire()
        order.append(n)
        await asyncio.sleep(0)
        admission.release()

    async def run() -> None:
        await asyncio.gather(*(worker(n) for n in range(5)))

    asyncio.run(run())
    assert order == [0, 1, 2, 3, 4]
    assert admission.in_flight == 0


def test_a_stalled_body_is_408_and_its_connection_closed() -> None:
    app = make_app(body_read_timeout_seconds=0.1)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"500")]
    stalled = FakeCycle(body=b'{"sku": "ST', stall=True)

    before = refusals("request_timeout")
    asyncio.run(call(app, stalled, scope("/products", "POST", headers)))
    assert stalled.status == 408
    assert stalled.json()["code"] == "request_timeout"
    assert stalled.header(b"connection") == b"close"
    assert refusals("request_timeout") - before == 1


@pytest.mark.parametrize("length", [b"100", None], ids=["declared", "chunked"])
def test_a_body_that_arrives_is_served(length: bytes | None) -> None:
    app = make_app(body_read_timeout_seconds=5)
    body = b'{"sku": "OK-1", "name": "Mug", "price": "1.00", "stock": 1}'
    headers = [(b"content-type", b"application/json")]
    headers.append(
        (b"content-length", str(len(body)).encode())
        if length
        else (b"transfer-encoding", b"chunked")
    )
    cycle = asyncio.run(call(app, FakeCycle(body=body), scope("/products", "POST", headers)))
    assert cycle.status == 201, cycle.sent
