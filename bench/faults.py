"""The fault figures of docs/operations-faults.md: overload, SIGTERM with a stalled client, and
what a refusal costs.

    .venv/bin/python -m bench.faults overload --engine sqlite --connections 1000
    .venv/bin/python -m bench.faults overload --engine postgresql --connections 2000
    .venv/bin/python -m bench.faults sigterm --engine sqlite
    .venv/bin/python -m bench.faults refusal

`overload`: a real server (2 workers, API keys on, ./run.sh's uvicorn flags) on a fresh
database; N connections each place orders in a loop for `--seconds`, every request with a 10 s
client timeout (a client that times out closes its connection and starts over, as a client
library does); meanwhile, from a process of its own, /healthz and /readyz are probed 8 times a
second on fresh connections, 10 s timeout each. Prints: requests sent and answered, statuses,
client timeouts, orders stored without a 201 (orders in the database minus 201s received), the
server's CPU per answered request (both workers, during the load), and the probes' p50/p99 and
failures.

`sigterm`: one client sends half a body and stalls; the time from SIGTERM to the server's exit.

`refusal`: no server: the app's own CPU per `POST /orders` refused 503 `overloaded` (its admission
queue held full), through the ASGI interface, best of 5 rounds. What the worker spends per shed
request on top of uvicorn's share (bench/README.md "/healthz under 2,000 connections").

The client is a few lines of HTTP/1.1 over asyncio streams (httpx would spend more CPU than
the server under test on this machine). 127.0.0.1 only; every loop is bounded in time.
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import signal
import socket
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import uvloop

from tests.support.databases import database_url
from tests.support.live_server import UVICORN_FLAGS, LiveServer

KEY = "bench-faults-key-0123456789ab"
CLIENT_TIMEOUT = 10.0


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes, bool]:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    body = await reader.readexactly(length)
    return status, body, b"\r\nconnection: close" in head.lower()


def _post(path: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _orderer(port: int, product_id: int, until: float, seen: Counter[str]) -> None:
    request = _post("/orders", json.dumps({"product_id": product_id, "quantity": 1}).encode())
    reader = writer = None
    while time.monotonic() < until:
        try:
            if writer is None:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", port), CLIENT_TIMEOUT
                )
            assert reader is not None
            status, body, closing = await asyncio.wait_for(
                _exchange(reader, writer, request), CLIENT_TIMEOUT
            )
            code = json.loads(body).get("code", "") if status >= 400 else ""
            seen[f"{status} {code}".strip()] += 1
            if closing:  # the server closes it too (413, 408, 431)
                writer.close()
                writer = None
            if status == 503:  # as a polite client does with Retry-After, if briefly
                await asyncio.sleep(0.05)
        except TimeoutError:
            seen["client timeout"] += 1
            if writer is not None:
                writer.close()
            writer = None
        except (OSError, asyncio.IncompleteReadError, ValueError) as error:
            seen[type(error).__name__] += 1
            if writer is not None:
                writer.close()
            writer = None
            await asyncio.sleep(0.05)
    if writer is not None:
        writer.close()


async def _probe(
    port: int,
    path: str,
    until: float,
    latencies: list[float],
    timeouts: list[int],
    connects: list[float],
):
    """Probe `path` on fresh connections; the time to connect (the kernel's accept queue:
    a full one drops the SYN, and the client's retries come at 1, 3 and 7 s) is kept apart
    from the whole probe's (the rest is the time the worker's event loop took to answer)."""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
    while time.monotonic() < until:
        started = time.monotonic()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port), CLIENT_TIMEOUT
            )
            connects.append(time.monotonic() - started)
            status, _, _ = await asyncio.wait_for(
                _exchange(reader, writer, request), CLIENT_TIMEOUT
            )
            writer.close()
            latencies.append(time.monotonic() - started)
            if status != 200:
                timeouts.append(status)
        except (TimeoutError, OSError, asyncio.IncompleteReadError):
            timeouts.append(0)
        await asyncio.sleep(max(0.0, 0.125 - (time.monotonic() - started)))


def _quantiles(values: list[float]) -> str:
    if len(values) < 2:
        return "n/a"
    cuts = statistics.quantiles(values, n=100)
    return f"p50 {cuts[49] * 1000:.0f} ms, p99 {cuts[98] * 1000:.0f} ms"


def _probes(port: int, seconds: float, results: "multiprocessing.Queue[dict]") -> None:
    """In a process of its own, so the load's client does not delay the probes' own loop."""

    async def run() -> dict:
        until = time.monotonic() + seconds
        probes: dict = {path: ([], [], []) for path in ("/healthz", "/readyz")}
        await asyncio.gather(*(_probe(port, path, until, *probes[path]) for path in probes))
        return probes

    results.put(asyncio.run(run()))


async def _overload(
    port: int, product_id: int, connections: int, seconds: float, nice: int
) -> dict:
    until = time.monotonic() + seconds
    seen: Counter[str] = Counter()
    results: multiprocessing.Queue[dict] = multiprocessing.Queue()
    prober = multiprocessing.Process(target=_probes, args=(port, seconds, results))
    prober.start()
    if nice:  # the load's client yields the CPU to the server and the probes
        os.nice(nice)
    await asyncio.gather(*(_orderer(port, product_id, until, seen) for _ in range(connections)))
    probes = results.get(timeout=3 * CLIENT_TIMEOUT)
    prober.join(timeout=CLIENT_TIMEOUT)
    return {"seen": seen, "probes": probes}


def _group_cpu(group: int) -> float:
    """CPU seconds (user + system) used so far by the processes of a process group."""
    ticks = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def overload(args: argparse.Namespace) -> None:
    env = {"API_KEYS": KEY, "LOG_LEVEL": "WARNING"}
    with tempfile.TemporaryDirectory() as tmp, database_url(args.engine, Path(tmp)) as url:
        with LiveServer(url, workers=2, env=env, uvicorn_args=tuple(UVICORN_FLAGS)) as server:
            auth = {"X-API-Key": KEY}
            product = httpx.post(
                f"{server.base_url}/products",
                headers=auth,
                json={"sku": "FAULT-1", "name": "Mug", "price": "1.00", "stock": 2_000_000_000},
            ).json()
            assert server.process is not None
            cpu = _group_cpu(server.process.pid)
            result = asyncio.run(
                _overload(server.port, product["id"], args.connections, args.seconds, args.nice)
            )
            cpu = _group_cpu(server.process.pid) - cpu
            time.sleep(1)  # let the last admitted requests finish
            stored = httpx.get(f"{server.base_url}/orders?limit=1", headers=auth).json()["total"]
    seen = result["seen"]
    sent = sum(seen.values())
    answered = (
        sent
        - seen["client timeout"]
        - sum(n for k, n in seen.items() if not k[0].isdigit() and k != "client timeout")
    )
    print(
        f"{args.engine}, {args.connections} connections, {args.seconds:g} s, 2 workers, "
        f"client nice {args.nice}"
    )
    print(f"  requests {sent}, answered {answered} ({answered / max(sent, 1):.1%})")
    print(f"  outcomes {dict(seen.most_common())}")
    print(f"  server CPU {cpu:.1f} s, {cpu / max(answered, 1) * 1e6:.0f} µs per answered request")
    print(f"  orders stored {stored}, 201s received {seen['201']}, ")
    print(f"  orders stored without a 201: {stored - seen['201']}")
    for path, (latencies, failures, connects) in result["probes"].items():
        print(
            f"  {path}: {len(latencies)} answered, {_quantiles(latencies)}, failed "
            f"{len(failures)}; of which connecting: {_quantiles(connects)}"
        )


def sigterm(args: argparse.Namespace) -> None:
    env = {"API_KEYS": KEY, "LOG_LEVEL": "WARNING"}
    with tempfile.TemporaryDirectory() as tmp, database_url(args.engine, Path(tmp)) as url:
        with LiveServer(url, workers=2, env=env, uvicorn_args=tuple(UVICORN_FLAGS)) as server:
            stalled = socket.create_connection(("127.0.0.1", server.port), timeout=30)
            stalled.sendall(_post("/orders", b'{"product_id": 1, "quantity": 1}')[:-10])
            time.sleep(0.5)
            assert server.process is not None
            started = time.monotonic()
            os.killpg(server.process.pid, signal.SIGTERM)
            stalled.settimeout(30)
            answer = stalled.recv(4096)
            server.process.wait(timeout=60)
            elapsed = time.monotonic() - started
            stalled.close()
    status = answer.split(b"\r\n", 1)[0].decode() if answer else "(closed)"
    print(f"{args.engine}: SIGTERM with a stalled client ended in {elapsed:.1f} s; it got {status}")


def refusal(args: argparse.Namespace) -> None:
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="faults-"))
    from app.core.config import Settings
    from app.main import create_app

    body = json.dumps({"product_id": 1, "quantity": 1}).encode()
    headers = [
        (b"host", b"127.0.0.1"),
        (b"x-api-key", KEY.encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    statuses: Counter[int] = Counter()

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            statuses[message["status"]] += 1

    def scope() -> dict:
        return {
            **{"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1"},
            **{"method": "POST", "scheme": "http", "path": "/orders", "raw_path": b"/orders"},
            **{"query_string": b"", "root_path": "", "headers": headers},
            **{"client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)},
        }

    async def run(app: Any) -> float:
        layer = app.middleware_stack = app.build_middleware_stack()
        while not hasattr(layer, "admission"):  # down to the request path
            layer = layer.app
        admission = layer.admission
        admission.in_flight = admission.limit  # every turn taken, the queue full
        loop = asyncio.get_running_loop()
        admission._waiters.extend(loop.create_future() for _ in range(admission.queue_limit))
        best = float("inf")
        for _ in range(5):
            started = time.process_time()
            for _ in range(args.requests):
                await app(scope(), receive, send)
            best = min(best, (time.process_time() - started) / args.requests)
        return best

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            _env_file=None, app_env="test", database_url=f"sqlite:///{tmp}/r.db", api_keys=KEY
        )
        app = create_app(settings)
        seconds = uvloop.run(run(app))
    print(f"refused POST /orders: {seconds * 1e6:.1f} µs of CPU each; statuses {dict(statuses)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=["overload", "sigterm", "refusal"])
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--requests", type=int, default=20_000, help="per round (refusal)")
    parser.add_argument(
        "--nice", type=int, default=0, help="niceness of the load's client (not the probes')"
    )
    args = parser.parse_args()
    {"overload": overload, "sigterm": sigterm, "refusal": refusal}[args.scenario](args)


if __name__ == "__main__":
    main()
