"""The ceiling of an order on PostgreSQL here: the order's one statement alone, with no HTTP
and no framework, and what it costs the client and the database server.

    .venv/bin/python -m bench.order_statement            # 3,000 orders, 64 at a time, 2 rounds

On a fresh schema of 1,000 products, `--concurrency` orders at a time run the statement the
service sends for `POST /orders` of one line (app/orders.py `_OnPostgreSQL.PLACE_ORDER`, event
and ledger included), each on its own connection of a pool of 20, nothing around it. For
comparison it also runs `SELECT 1` and a one-row `UPDATE`. Figures: statements a second, this
process's CPU per statement, and the CPU of every PostgreSQL process per statement (from
/proc: the server must run on this machine). Whatever the service does per request comes on
top of these, on the same two cores.
"""

import argparse
import asyncio
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import uvloop

from app import orders
from app.core.formats import rfc3339
from app.db.pg_pool import ConnectionPool
from app.db.postgresql import connect_arguments
from app.events import outbox
from app.tables import EventType
from bench.servers import fresh_database, postgres_cpu_seconds, seed_products

PRODUCTS = 1000
ORDER_STATEMENT, ORDER_PARAMETERS = orders._OnPostgreSQL.PLACE_ORDER.compiled("postgresql")


def order_arguments() -> list[Any]:
    now = datetime.now(UTC)
    values = {
        "product_ids": [random.randint(1, PRODUCTS)],
        "quantities": [1],
        "line_count": 1,
        "crossing_allowed": False,  # run alone: serves only orders that cross no threshold
        "now": now,
        "expires_at": None,
        "created_text": rfc3339(now),
        "expires_text": None,
        "shop_currency": "USD",
        **outbox.event_parameters(EventType.ORDER_CREATED),
        # An order without charges, external_id, customer or metadata (app/orders.py
        # `_stored_fields`); the names absent at earlier heads are simply not asked for.
        "charges": "[]",
        "charges_net": 0,
        "external_id": None,
        "customer_email": None,
        "customer_name": None,
        "customer": "null",
        "metadata_json": "{}",
    }
    return [values[name] for name in ORDER_PARAMETERS]


async def measure(
    pool: ConnectionPool, query: str, arguments: Callable[[], list[Any]], count: int, at_once: int
) -> tuple[float, float, float]:
    turns = asyncio.Semaphore(at_once)

    async def one() -> None:
        async with turns:
            raw = await pool.acquire(10)
            try:
                await raw.fetch(query, *arguments())
            finally:
                pool.release(raw)

    await asyncio.gather(*(one() for _ in range(min(300, count))))  # warm-up: prepared, cached
    cpu, server, wall = time.process_time(), postgres_cpu_seconds(), time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    wall = time.perf_counter() - wall
    return (
        count / wall,
        (time.process_time() - cpu) / count * 1e6,
        (postgres_cpu_seconds() - server) / count * 1e6,
    )


async def main(url: str, args: argparse.Namespace) -> None:
    arguments = connect_arguments(url)
    pool = ConnectionPool(lambda: asyncpg.connect(**arguments), 20)
    cases: dict[str, tuple[str, Callable[[], list[Any]]]] = {
        "SELECT 1": ("SELECT 1", list),
        "UPDATE one product": (
            "UPDATE products SET committed = committed + 1, updated_at = now() WHERE id = $1",
            lambda: [random.randint(1, PRODUCTS)],
        ),
        "the order's statement": (ORDER_STATEMENT, order_arguments),
    }
    print(f"{args.concurrency} at a time, {args.requests} statements a case:")
    print("| statement | round | per second | client CPU µs | PostgreSQL CPU µs |")
    print("|---|---|---|---|---|")
    for round_ in range(1, args.rounds + 1):
        for name, (query, make) in cases.items():
            rate, client, server = await measure(pool, query, make, args.requests, args.concurrency)
            print(f"| {name} | {round_} | {rate:,.0f} | {client:.0f} | {server:.0f} |")
    await pool.close(10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    options = parser.parse_args()
    with fresh_database("postgresql") as database_url:
        seed_products(database_url, PRODUCTS)
        uvloop.run(main(database_url, options))
