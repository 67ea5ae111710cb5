"""Catalog import and export through the ASGI interface, on each engine: the time and the
peak Python memory (tracemalloc) of a 10,000-row import (CSV and NDJSON, dry run and apply)
and of an export at 10,000 and at 100,000 products, whose memory must not grow with the
catalog. No server, no socket: the export's body is counted and dropped as it streams, as a
client reading it would. Also the cost of `catalog_version` alone (the export reads the
catalog twice: the version, then the rows).

    .venv/bin/python -m bench.catalog                      # both engines, ~3 min
    .venv/bin/python -m bench.catalog --engines sqlite --rounds 1
"""

import argparse
import asyncio
import os
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="catalog-bench-"))

import orjson
from sqlalchemy import insert, text

from app import catalog
from app.core.config import Settings
from app.db.base import Sql
from app.main import create_app
from app.tables import Product
from bench.servers import API_KEY, _engine, fresh_database

ROWS = 10_000
_AGGREGATE = Sql("SELECT count(*) AS n, sum(id) AS total FROM products WHERE archived_at IS NULL")


async def _call(app: Any, method: str, target: str, body: bytes, content_type: str) -> tuple:
    """One request straight into the app: (status, bytes of body received)."""
    path, _, query = target.partition("?")
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
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"x-api-key", API_KEY.encode()),
        ],
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    answer = {"status": 0, "bytes": 0}

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        else:
            answer["bytes"] += len(message.get("body", b""))  # counted, then dropped

    await app(scope, receive, send)
    return answer["status"], answer["bytes"]


def measured(run: Callable[[], tuple]) -> dict[str, Any]:
    """Wall time of one run, then the peak of Python's allocations over another."""
    started = time.perf_counter()
    status, size = run()
    seconds = time.perf_counter() - started
    tracemalloc.start()
    tracemalloc.reset_peak()
    run()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"status": status, "seconds": seconds, "peak_mib": peak / 2**20, "bytes": size}


def import_body(prefix: str, media: str) -> bytes:
    rows = [
        {"sku": f"{prefix}-{n}", "name": f"Imported {n}", "price": "9.99", "on_hand": n % 50}
        for n in range(ROWS)
    ]
    if media == "text/csv":
        lines = [
            "sku,name,price,on_hand",
            *(f"{r['sku']},{r['name']},9.99,{r['on_hand']}" for r in rows),
        ]
        return ("\n".join(lines) + "\n").encode()
    return b"".join(orjson.dumps(r) + b"\n" for r in rows)


def add_products(url: str, first: int, last: int) -> None:
    """Products with ids first..last, inserted in bulk (no events: a seed, not a shop)."""
    now = datetime.now(UTC)
    engine = _engine(url)
    with engine.begin() as connection:
        for start in range(first, last + 1, 10_000):
            rows = [
                {
                    "id": n,
                    "sku": f"BENCH-{n}",
                    "name": f"Bench product {n}",
                    "description": "Stoneware, 350 ml",
                    "price_cents": 1250,
                    "stock": n % 100,
                    "created_at": now,
                    "updated_at": now,
                }
                for n in range(start, min(start + 10_000, last + 1))
            ]
            connection.execute(insert(Product), rows)
        if not url.startswith("sqlite"):
            connection.execute(
                text(
                    "SELECT setval(pg_get_serial_sequence('products', 'id'), max(id)) FROM products"
                )
            )
            connection.execute(text("ANALYZE products"))
    engine.dispose()


def count(url: str) -> int:
    engine = _engine(url)
    with engine.connect() as connection:
        found = connection.execute(text("SELECT count(*) FROM products")).scalar_one()
    engine.dispose()
    return int(found)


def run_engine(kind: str, rounds: int) -> list[tuple[str, dict[str, Any]]]:
    results: list[tuple[str, dict[str, Any]]] = []
    with fresh_database(kind) as url:
        app = create_app(Settings(_env_file=None, database_url=url, api_keys=[API_KEY]))
        loop = asyncio.new_event_loop()

        def call(method: str, target: str, body: bytes = b"", media: str = "text/csv") -> tuple:
            return loop.run_until_complete(_call(app, method, target, body, media))

        def aggregate() -> tuple:
            """What a version column would cost to read instead: one aggregate over the live
            products (here count and Σ id, as Σ version + count would be)."""

            async def unit(conn: Any) -> tuple:
                found = await conn.fetch_one(_AGGREGATE)
                return 200, 0 if found is None else 1

            return loop.run_until_complete(app.state.database.read(unit))

        def version() -> tuple:
            async def unit() -> tuple:
                async with app.state.database.snapshot() as conn:
                    return 200, len(await catalog.catalog_version(conn))

            return loop.run_until_complete(unit())

        add_products(url, 1, ROWS)
        for _ in range(rounds):
            results.append((f"{kind} catalog_version, 10k", measured(version)))
            results.append(
                (f"{kind} an aggregate instead (version column), 10k", measured(aggregate))
            )
            results.append(
                (f"{kind} export ndjson, 10k", measured(lambda: call("GET", "/products/export")))
            )
        for media, name in (("text/csv", "CSV"), ("application/x-ndjson", "NDJSON")):
            body = import_body(f"IMP-{name}", media)
            results.append(
                (
                    f"{kind} import {name} 10k rows, dry run",
                    measured(
                        lambda b=body, m=media: call("POST", "/products/import?dry_run=true", b, m)
                    ),
                )
            )
            started = time.perf_counter()
            status, _ = call("POST", "/products/import", body, media)
            results.append(
                (
                    f"{kind} import {name} 10k rows (creates), apply",
                    {"status": status, "seconds": time.perf_counter() - started, "peak_mib": None},
                )
            )
        # The same 10k rows again: every row unchanged (the plan, the version, no write).
        again = import_body("IMP-CSV", "text/csv")
        results.append(
            (
                f"{kind} import CSV 10k rows, all unchanged, apply",
                measured(lambda: call("POST", "/products/import", again, "text/csv")),
            )
        )
        add_products(url, count(url) + 1, 100_000)
        for _ in range(rounds):
            results.append((f"{kind} catalog_version, 100k", measured(version)))
            results.append(
                (f"{kind} an aggregate instead (version column), 100k", measured(aggregate))
            )
            results.append(
                (f"{kind} export ndjson, 100k", measured(lambda: call("GET", "/products/export")))
            )
            results.append(
                (
                    f"{kind} export csv, 100k",
                    measured(lambda: call("GET", "/products/export?format=csv")),
                )
            )
        loop.run_until_complete(app.state.database.close())
        loop.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(f"{'case':52} {'status':>6} {'seconds':>8} {'peak MiB':>9} {'MiB sent':>9}")
    for kind in args.engines.split(","):
        for name, figures in run_engine(kind, args.rounds):
            peak = figures["peak_mib"]
            sent = figures.get("bytes")
            print(
                f"{name:52} {figures['status']:>6} {figures['seconds']:>8.3f} "
                f"{'' if peak is None else f'{peak:.1f}':>9} "
                f"{'' if not sent else f'{sent / 2**20:.1f}':>9}"
            )


if __name__ == "__main__":
    main()
