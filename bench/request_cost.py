"""Where a request's time goes: CPU per request through the ASGI interface, without HTTP.

No server, no socket, no wrk: requests go straight into the app, `--concurrency` at a time, so
the figures are the app's own cost and hardly move with the machine's load. For each case it
measures the bare FastAPI app (the benchmark's denominator), the service, the service without
its own middleware (request id, metrics and JSON log line, API keys, body limit), and the CPU
spent inside the unit of work (its statements and the building of its rows into views, on the
event loop; a scan's in its database thread); the rest is the framework's share (routing,
parameters, validation, serialization) plus the seam's own (writer turn, BEGIN/COMMIT, the
one yield per request, a scan's thread hop).

    .venv/bin/python -m bench.request_cost          # SQLite, 3,000 requests a case, best of 3
    .venv/bin/python -m bench.request_cost --concurrency 1 --requests 1000 --rounds 5
    .venv/bin/python -m bench.request_cost --engine postgresql   # the service's side only
    .venv/bin/python -m bench.request_cost --role storefront     # a key whose role is checked

On PostgreSQL the figures are this process's CPU only (the server's is not in them), and a
unit's own CPU is not split out: its statements suspend, and the thread's clock would count
the other requests that run meanwhile.
"""

import argparse
import asyncio
import contextlib
import functools
import os
import random
import tempfile
import time
from collections import Counter
from typing import Any

os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="request-cost-"))

import uvloop

from app import products
from app.core import cursors
from app.core.config import Settings
from app.main import create_app
from bench.bare_app import app as bare_app
from bench.servers import API_KEY, fresh_database, seed_products

PRODUCTS = 1000
CASES = {
    "GET /products/{id}": ("GET", "/products/{id}", b""),
    "GET /products?limit=20": ("GET", "/products?limit=20", b""),
    "GET /products?limit=20&after=": ("GET", "/products?limit=20&after={after}", b""),
    # A page at a random offset, 0–980, by id and by price (dearest first).
    "GET /products?limit=20&offset=": ("GET", "/products?limit=20&offset={offset}", b""),
    "GET /products?limit=20&offset=&sort=-price": (
        "GET",
        "/products?limit=20&offset={offset}&sort=-price",
        b"",
    ),
    # A name search reads every live product's name (1,000 here), folded to lower case.
    "GET /products?limit=20&q=": ("GET", "/products?limit=20&q=PRODUCT%2099", b""),
    "POST /orders": ("POST", "/orders", b'{"product_id": {id}, "quantity": 1}'),
}
# The request path (app/http/request_path.py): request id, limits, keys, admission, metrics, log.
OWN_MIDDLEWARE = {"RequestPath"}


# The CPU time the units of work take (on the loop, or in a scan's database thread).
class UnitClock:
    seconds = 0.0


def timed(database: Any) -> Any:
    """Wrap the database's read/write/scan so each unit's own CPU time is added up; a SQLite
    unit never suspends, so the thread time around it is its own."""

    # One timed twin per unit, kept: the seam knows a scan by its unit (a new function object
    # per call would look like a new kind of scan every time, and never run on the loop).
    @functools.cache
    def timed_twin(unit: Any) -> Any:
        # wraps: the unit's marks (`one_statement_on_postgresql`) are the seam's to read.
        @functools.wraps(unit)
        async def timed_unit(conn: Any, *unit_args: Any, **unit_kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return await unit(conn, *unit_args, **unit_kwargs)
            finally:
                UnitClock.seconds += time.thread_time() - started

        return timed_unit

    for name in ("read", "write", "scan"):
        run = getattr(database, name)

        def wrapper(unit: Any, /, *args: Any, _run: Any = run, **kwargs: Any) -> Any:
            return _run(timed_twin(unit), *args, **kwargs)

        setattr(database, name, wrapper)
    return database


@functools.cache
def _after_first() -> str:
    """The cursor of the page after product 1 in the default order, as the list issues it (in a
    tree from before sorted lists too: bench/README.md "Offset pages and sorting")."""
    if hasattr(products, "SORTING"):
        filters = products.list_filters()
        return str(products.SORTING.cursor(products.DEFAULT_SORT, filters, {"id": 1}))
    return cursors.encode("products", 1)


async def _request(app: Any, method: str, target: str, body: bytes) -> int:
    product = str(random.randint(1, PRODUCTS))
    target = target.replace("{offset}", str(random.randint(0, PRODUCTS - 20)))
    if "{after}" in target:
        target = target.replace("{after}", _after_first())
    path, _, query = target.replace("{id}", product).partition("?")
    body = body.replace(b"{id}", product.encode())
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-api-key", API_KEY.encode()),
        ],
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.Event().wait()  # the client never disconnects
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(scope, receive, send)
    return statuses[0]


def cpu_per_request(
    app: Any, case: tuple[str, str, bytes], requests: int, concurrency: int
) -> tuple[float, Counter[int]]:
    """CPU microseconds per request (all threads of this process), and the statuses seen."""

    async def load() -> tuple[float, Counter[int]]:
        for _ in range(min(200, requests)):  # warm-up: caches, compiled statements
            await _request(app, *case)
        turns = asyncio.Semaphore(concurrency)

        async def one() -> int:
            async with turns:
                return await _request(app, *case)

        started = time.process_time()
        statuses = await asyncio.gather(*(one() for _ in range(requests)))
        return (time.process_time() - started) / requests * 1e6, Counter(statuses)

    return uvloop.run(load())


def service(url: str, without_own_middleware: bool, role: str = "") -> Any:
    # A bare key (an admin key) by default; `--role` names the key and gives it that role.
    key = f"bench:{role}:{API_KEY}" if role else API_KEY
    settings = Settings(_env_file=None, database_url=url, api_keys=[key])
    app = create_app(settings)
    timed(app.state.database)
    if without_own_middleware:
        app.user_middleware = [
            m for m in app.user_middleware if m.cls.__name__ not in OWN_MIDDLEWARE
        ]  # type: ignore[attr-defined]
    return app


def measure_case(
    url: str, name: str, case: tuple[str, str, bytes], args: argparse.Namespace
) -> tuple[float, float, float]:
    """Best of the rounds, interleaved: the service, without its middleware, the unit of work."""
    full, lean, unit = (float("inf"),) * 3
    # The JSON log lines are part of the cost; they are written, to /dev/null.
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        for _ in range(args.rounds):
            for without_own_middleware in (False, True):
                UnitClock.seconds = 0.0
                cpu, statuses = cpu_per_request(
                    service(url, without_own_middleware, args.role),
                    case,
                    args.requests,
                    args.concurrency,
                )
                assert set(statuses) <= {200, 201}, f"{name}: statuses {dict(statuses)}"
                units = args.requests + min(200, args.requests)  # the warm-up's too
                unit = min(unit, UnitClock.seconds / units * 1e6)
                if without_own_middleware:
                    lean = min(lean, cpu)
                else:
                    full = min(full, cpu)
    return full, lean, unit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--case", action="append", help="Only this case (may repeat).")
    parser.add_argument(
        "--role",
        default="",
        help="Send a named key of this role (storefront: the role check's lookup) instead of "
        "a bare admin key.",
    )
    args = parser.parse_args()
    bare = min(
        cpu_per_request(bare_app, ("GET", "/", b""), args.requests, args.concurrency)[0]
        for _ in range(args.rounds)
    )
    hop = min(
        cpu_per_request(bare_app, ("GET", "/hop", b""), args.requests, args.concurrency)[0]
        for _ in range(args.rounds)
    )
    print(
        f"{args.concurrency} concurrent, {args.requests} requests a case, best of "
        f"{args.rounds} rounds; CPU per request:"
    )
    print(
        f"bare FastAPI GET /: {bare:.0f} µs; the same answer from a thread (GET /hop): "
        f"{hop:.0f} µs, {bare / hop:.2f} of bare\n"
    )
    print(
        "| case | service µs | without own middleware µs | unit of work µs | "
        "framework + hop µs | own middleware µs | ratio of CPU to bare |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, case in CASES.items():
        if args.case and name not in args.case:
            continue
        with fresh_database(args.engine) as url:
            seed_products(url, PRODUCTS)
            full, lean, unit = measure_case(url, name, case, args)
        split = (
            f"{unit:.0f} | {lean - unit:.0f}" if args.engine == "sqlite" else "- | -"
        )  # a PostgreSQL unit suspends: its thread clock would count other requests
        print(
            f"| {name} | {full:.0f} | {lean:.0f} | {split} | {full - lean:.0f} | "
            f"{bare / full:.2f} |"
        )


if __name__ == "__main__":
    main()
