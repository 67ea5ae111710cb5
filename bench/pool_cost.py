"""Why the service has its own PostgreSQL pool: CPU per request of asyncpg's pool and of
app/db/pg_pool.py, around the same query, in one run.

    .venv/bin/python -m bench.pool_cost                 # 5,000 requests, 64 at a time, 2 rounds
    .venv/bin/python -m bench.pool_cost --requests 20000 --rounds 3

Each request takes a connection, runs `SELECT 1` and gives it back, `--concurrency` requests
at a time over at most 20 connections (the service's default pool); the figure is this
process's CPU time per request, which the database server's work does not enter.
"""

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import uvloop

from app.db.pg_pool import ConnectionPool
from app.db.postgresql import connect_arguments
from bench.servers import POSTGRES_URL

POOL_SIZE = 20
ACQUIRE_TIMEOUT = 10.0


async def cpu_per_request(
    acquire: Callable[[], Awaitable[Any]],
    release: Callable[[Any], Any],
    requests: int,
    concurrency: int,
) -> float:
    turns = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with turns:
            raw = await acquire()
            try:
                await raw.fetchval("SELECT 1")
            finally:
                released = release(raw)
                if asyncio.iscoroutine(released):
                    await released

    await asyncio.gather(*(one() for _ in range(min(500, requests))))  # warm-up
    started = time.process_time()
    await asyncio.gather(*(one() for _ in range(requests)))
    return (time.process_time() - started) / requests * 1e6


async def main(args: argparse.Namespace) -> None:
    arguments = connect_arguments(POSTGRES_URL)
    theirs = await asyncpg.create_pool(min_size=0, max_size=POOL_SIZE, **arguments)
    ours = ConnectionPool(lambda: asyncpg.connect(**arguments), POOL_SIZE)
    print(f"{args.concurrency} at a time, {args.requests} requests, µs of CPU per request:")
    for round_ in range(1, args.rounds + 1):
        asyncpg_us = await cpu_per_request(
            lambda: theirs.acquire(timeout=ACQUIRE_TIMEOUT),
            theirs.release,
            args.requests,
            args.concurrency,
        )
        ours_us = await cpu_per_request(
            lambda: ours.acquire(ACQUIRE_TIMEOUT), ours.release, args.requests, args.concurrency
        )
        print(
            f"round {round_}: asyncpg's pool {asyncpg_us:.0f} µs, "
            f"app/db/pg_pool.py {ours_us:.0f} µs"
        )
    await theirs.close()
    await ours.close(10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    uvloop.run(main(parser.parse_args()))
