"""What the request path costs per request, in microseconds, with no server and no network noise.

    .venv/bin/python -m ops.middleware_cost                 # metrics in memory (one worker)
    PROMETHEUS_MULTIPROC_DIR=$(mktemp -d) .venv/bin/python -m ops.middleware_cost  # as ./run.sh

Calls a do-nothing ASGI endpoint directly: bare, and behind the request path
(app/http/request_path.py: request id, header limits, API key, admission, metrics and the access
line), with the access line on (INFO) and off (WARNING), and with a storefront key, whose role
the request path looks up in the API's route table. Log lines go to /dev/null. Best of 5 rounds
of 20,000 calls each, so other load on the machine shows less. Run the same script on an older
checkout for the before/after (bench/README.md "One request-path layer").
"""

import asyncio
import os
import sys
import time
from types import SimpleNamespace

from app.core.access import named_keys
from app.core.logs import configure_logging
from app.http.api_keys import ApiKeys
from app.http.known_routes import RouteTable
from app.http.request_path import RequestPath
from app.http.request_queue import Admission

KEY = "k" * 24
HEADERS = [(b"host", b"shop"), (b"authorization", b"Bearer " + KEY.encode()), (b"accept", b"*/*")]


class _Route:
    path = "/products/{product_id}"


async def endpoint(scope, receive, send):  # type: ignore[no-untyped-def]
    scope["route"] = _Route
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def request_path(role: str = ""):  # type: ignore[no-untyped-def]
    """The request path with one key: a bare (admin) key, or a named key of `role`, whose
    role is looked up in the API's real route table."""
    from app.routers import ROUTERS

    routes = [route for router in ROUTERS for route in router.routes] if role else []
    return RequestPath(
        endpoint,
        routes=RouteTable(routes),
        readiness=SimpleNamespace(schema_behind=False),  # type: ignore[arg-type]
        admission=Admission(64, 256, 2.0),
        keys=ApiKeys(named_keys([f"shop:{role}:{KEY}" if role else KEY])),
        cors=None,
        max_body_bytes=1 << 20,
        body_timeout=10.0,
        max_header_bytes=16384,
        max_headers=100,
    )


async def best_of(app, rounds: int = 5, calls: int = 20_000) -> float:  # type: ignore[no-untyped-def]
    async def receive():  # type: ignore[no-untyped-def]
        return {"type": "http.request", "body": b""}

    async def send(_message):  # type: ignore[no-untyped-def]
        pass

    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            scope = {
                "type": "http",
                "method": "GET",
                "path": "/products/1",
                "query_string": b"",
                "headers": HEADERS,
                "state": {},
            }
            await app(scope, receive, send)
        best = min(best, (time.perf_counter() - started) / calls * 1e6)
    return best


async def main() -> None:
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - the log lines' destination
    mode = "multiprocess" if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else "in-memory"
    print(f"metrics: {mode}")
    for label, level, app in [
        ("bare endpoint", "WARNING", endpoint),
        ("request path, access line off", "WARNING", request_path()),
        ("request path, access line on", "INFO", request_path()),
        ("storefront key (role checked), line on", "INFO", request_path("storefront")),
    ]:
        configure_logging(level)
        print(f"{label:38} {await best_of(app):6.1f} µs/request", file=sys.stdout)


if __name__ == "__main__":
    asyncio.run(main())
