"""The request path against real uvicorn servers: one access line per request, nothing secret
in the log, header limits, stalled bodies, idle connections, SIGTERM with a stalled client, and
overload with probes that keep answering. Bounded in count and time; 127.0.0.1 only."""

import asyncio
import json
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest

from tests.support.databases import database_url
from tests.support.live_server import LiveServer, free_port

pytestmark = pytest.mark.live

KEY = "live-path-key-9f8e7d6c5b4a"
SECRET_QUERY = "query-secret-must-not-be-logged"


def raw_request(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send `data` on a fresh connection and read until the server closes or `timeout`."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        return read_until_closed(sock, timeout)


def read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    received, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        received += chunk
    return received


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def body_of(response: bytes) -> dict:
    return json.loads(response.split(b"\r\n\r\n", 1)[1])


def sqlite_server(tmp_path: Path, **options: object) -> AbstractContextManager[LiveServer]:
    class _Server(AbstractContextManager[LiveServer]):
        def __enter__(self) -> LiveServer:
            self._url = database_url("sqlite", tmp_path)
            self._server = LiveServer(
                self._url.__enter__(), log_path=tmp_path / "server.log", **options
            )
            return self._server.__enter__()

        def __exit__(self, *exc: object) -> None:
            self._server.__exit__(*exc)
            self._url.__exit__(*exc)

    return _Server()


def log_records(server: LiveServer) -> list[dict]:
    assert server.log_path is not None
    return [json.loads(line) for line in server.log_path.read_text().splitlines() if line]


def test_one_access_line_per_request_and_no_secret_even_without_no_access_log(tmp_path):
    env = {"API_KEYS": KEY, "LOG_LEVEL": "INFO"}
    # Started without --no-access-log: uvicorn's own access line must still stay off.
    with sqlite_server(tmp_path, env=env, uvicorn_args=()) as server:
        auth = {"X-API-Key": KEY}
        for n in range(3):
            response = httpx.get(
                f"{server.base_url}/products?limit=5&api_key={SECRET_QUERY}",
                headers={**auth, "X-Request-ID": f"count-me-{n}"},
            )
            assert response.status_code == 422  # api_key is no parameter of the API
        assert httpx.get(f"{server.base_url}/products/", headers=auth).status_code == 200
        time.sleep(0.3)
        records = log_records(server)
    for n in range(3):
        lines = [r for r in records if r.get("request_id") == f"count-me-{n}"]
        assert len(lines) == 1, lines
        assert lines[0]["logger"] == "app.access"
        assert lines[0]["query"] == "limit=5&api_key=[redacted]"
        assert {"level", "logger", "message", "request_id", "timestamp"} <= lines[0].keys()
    text = (tmp_path / "server.log").read_text()
    assert SECRET_QUERY not in text and KEY not in text
    assert not [r for r in records if r["logger"] == "uvicorn.access"]


@pytest.fixture(scope="module")
def limits_server(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("limits")
    env = {"BODY_READ_TIMEOUT_SECONDS": "1", "LOG_LEVEL": "INFO"}
    with sqlite_server(
        tmp, env=env, uvicorn_args=("--no-access-log", "--timeout-keep-alive", "1")
    ) as server:
        yield server


@pytest.mark.parametrize(
    "extra",
    [b"X-Big: " + b"x" * 1_000_000 + b"\r\n", b"".join(b"X-H%d: v\r\n" % n for n in range(10_000))],
    ids=["one-megabyte-header", "ten-thousand-headers"],
)
def test_oversized_headers_are_431(limits_server: LiveServer, extra: bytes) -> None:
    request = b"GET /products HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra + b"\r\n"
    response = raw_request(limits_server.port, request)
    assert status_of(response) == 431, response[:200]
    assert body_of(response)["code"] == "headers_too_large"


def test_a_stalled_body_gets_408_and_the_connection_is_closed(limits_server: LiveServer) -> None:
    head = (
        b"POST /products HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 200\r\n\r\n"
    )
    started = time.monotonic()
    response = raw_request(limits_server.port, head + b'{"sku": "SLOW', timeout=15)
    assert status_of(response) == 408, response[:300]
    assert body_of(response)["code"] == "request_timeout"
    assert time.monotonic() - started < 10, "closed by the server, not by the client's timeout"
    assert httpx.get(f"{limits_server.base_url}/products").json()["total"] == 0


def test_an_idle_keep_alive_connection_is_closed(limits_server: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", limits_server.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        first = b""
        while not first.endswith(b'{"status":"ok"}'):  # headers and body may come apart
            chunk = sock.recv(65536)
            assert chunk, first
            first += chunk
        assert status_of(first) == 200
        started = time.monotonic()
        assert read_until_closed(sock, timeout=10) == b""
        assert time.monotonic() - started < 9, "the server closed it, not our read timeout"


def test_sigterm_with_a_stalled_client_ends_and_answers_in_flight_requests(tmp_path) -> None:
    env = {"BODY_READ_TIMEOUT_SECONDS": "2"}
    args = ("--no-access-log", "--timeout-graceful-shutdown", "5")
    with sqlite_server(tmp_path, env=env, uvicorn_args=args) as server:
        stalled = socket.create_connection(("127.0.0.1", server.port), timeout=15)
        stalled.sendall(
            b"POST /products HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        kept = httpx.Client(base_url=server.base_url)
        assert kept.get("/healthz").status_code == 200
        time.sleep(0.2)
        assert server.process is not None
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        answer = read_until_closed(stalled, timeout=15)
        server.process.wait(timeout=15)
        elapsed = time.monotonic() - started
        stalled.close()
        kept.close()
    assert status_of(answer) == 408, answer[:200]
    assert elapsed < 8, f"SIGTERM took {elapsed:.1f} s"


def test_sigterm_ends_within_the_graceful_timeout_whatever_the_body_timeout(tmp_path) -> None:
    env = {"BODY_READ_TIMEOUT_SECONDS": "60"}
    args = ("--no-access-log", "--timeout-graceful-shutdown", "2")
    with sqlite_server(tmp_path, env=env, uvicorn_args=args) as server:
        stalled = socket.create_connection(("127.0.0.1", server.port), timeout=15)
        stalled.sendall(b"POST /orders HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{")
        time.sleep(0.2)
        assert server.process is not None
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=20)
        elapsed = time.monotonic() - started
        stalled.close()
    assert elapsed < 8, f"SIGTERM took {elapsed:.1f} s"


# --- overload, both engines ------------------------------------------------------------------

CONNECTIONS = 300


async def _load(base_url: str, product_id: int) -> tuple[Counter[str], list[int]]:
    limits = httpx.Limits(max_connections=CONNECTIONS + 20, max_keepalive_connections=0)
    outcomes: Counter[str] = Counter()
    probe_statuses: list[int] = []
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=10) as client:

        async def order() -> None:
            try:
                response = await client.post(
                    "/orders", json={"product_id": product_id, "quantity": 1}
                )
            except httpx.HTTPError as error:
                outcomes[type(error).__name__] += 1
                return
            code = response.json().get("code", "") if response.status_code >= 400 else ""
            outcomes[f"{response.status_code} {code}".strip()] += 1

        async def probes() -> None:
            await asyncio.sleep(0.05)
            for _ in range(10):
                for path in ("/healthz", "/readyz"):
                    try:
                        probe_statuses.append((await client.get(path, timeout=5)).status_code)
                    except httpx.HTTPError:
                        probe_statuses.append(0)
                await asyncio.sleep(0.02)

        await asyncio.gather(probes(), *(order() for _ in range(CONNECTIONS)))
    return outcomes, probe_statuses


def test_overload_is_refused_fast_and_every_stored_order_was_acknowledged(
    live_server: Callable[..., AbstractContextManager[LiveServer]],
) -> None:
    env = {"MAX_IN_FLIGHT": "4", "MAX_QUEUED": "8", "QUEUE_TIMEOUT_SECONDS": "0.5"}
    with live_server(env=env) as server:
        stock = 10_000
        product = httpx.post(
            f"{server.base_url}/products",
            json={"sku": "LOAD-1", "name": "Mug", "price": "1.00", "stock": stock},
        ).json()
        outcomes, probe_statuses = asyncio.run(_load(server.base_url, product["id"]))
        orders = httpx.get(f"{server.base_url}/orders?limit=1").json()["total"]
        left = httpx.get(f"{server.base_url}/products/{product['id']}").json()["stock"]
        metrics = httpx.get(f"{server.base_url}/metrics").text

    assert sum(outcomes.values()) == CONNECTIONS
    assert set(outcomes) <= {"201", "503 overloaded"}, outcomes
    assert outcomes["503 overloaded"] > 0, f"{CONNECTIONS} at once must overload 4 + 8: {outcomes}"
    assert orders == outcomes["201"], "an order stored without its 201"
    assert left == stock - outcomes["201"]
    assert probe_statuses == [200] * 20, probe_statuses
    assert 'http_refusals_total{reason="overloaded"}' in metrics


# --- the client-gone probe reads uvicorn's own state: pin that against the installed uvicorn --


@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_the_client_gone_probe_sees_a_real_disconnect(http: str) -> None:
    import uvicorn

    from app.http.client_disconnect import probe

    seen: list[bool] = []
    asked = threading.Event()

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        gone = probe(receive)
        seen.append(gone())
        asked.set()
        for _ in range(100):  # at most 5 s
            if gone():
                break
            await asyncio.sleep(0.05)
        seen.append(gone())

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, http=http, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert asked.wait(5)
        deadline = time.monotonic() + 6
        while len(seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert seen == [False, True]
