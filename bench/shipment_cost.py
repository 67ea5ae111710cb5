"""What a shipment costs: CPU per `POST /orders/{id}/shipments` of a paid 3-line order, beside
the `POST /orders` that placed the same 3 lines, through the ASGI interface (no server, no
socket: bench/request_cost.py's harness), on a fresh database of 1,000 products.

    .venv/bin/python -m bench.shipment_cost                        # SQLite
    .venv/bin/python -m bench.shipment_cost --engine postgresql    # + the database server's CPU

Each round places `--orders` orders of 3 lines (timed), pays them by a status move (not
timed), then ships each one whole (timed), `--concurrency` requests at a time; each figure is
the least of the rounds. A request refused 503 (a full admission queue on a busy machine) is
sent again, untimed. On PostgreSQL the service's figure is this process's CPU only, and the
database server's CPU per request (every `postgres` process of this machine, so other jobs on
it show) is given beside it.
"""

import argparse
import asyncio
import contextlib
import json
import os
import random
import time
from collections import Counter
from typing import Any

import uvloop

from bench.request_cost import PRODUCTS, service
from bench.servers import API_KEY, fresh_database, postgres_cpu_seconds, seed_products


async def _call(app: Any, method: str, path: str, body: bytes) -> tuple[int, bytes]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
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
    status: list[int] = []
    answer: list[bytes] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.Event().wait()  # the client never disconnects
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
        elif message["type"] == "http.response.body":
            answer.append(message.get("body", b""))

    await app(scope, receive, send)
    return status[0], b"".join(answer)


async def _timed(
    app: Any, calls: list[tuple[str, str, bytes]], concurrency: int, engine: str
) -> tuple[float, float, Counter[int], list[bytes]]:
    """CPU µs per call of this process and of the database server (PostgreSQL), the statuses,
    and the answers' bodies."""
    turns = asyncio.Semaphore(concurrency)

    async def one(call: tuple[str, str, bytes]) -> tuple[int, bytes]:
        async with turns:
            return await _call(app, *call)

    database = postgres_cpu_seconds() if engine == "postgresql" else 0.0
    started = time.process_time()
    answers = await asyncio.gather(*(one(call) for call in calls))
    cpu = (time.process_time() - started) / len(calls) * 1e6
    database = (postgres_cpu_seconds() - database) / len(calls) * 1e6 if database else 0.0
    return cpu, database, Counter(s for s, _ in answers), [b for _, b in answers]


def _order_body(rng: random.Random) -> bytes:
    lines = rng.sample(range(1, PRODUCTS + 1), 3)
    return json.dumps({"items": [{"product_id": p, "quantity": 2} for p in lines]}).encode()


async def _all_answered(
    app: Any, calls: list[tuple[str, str, bytes]], concurrency: int, engine: str
) -> tuple[float, float, list[bytes], int]:
    """`_timed`, then any call refused with 503 (a full admission queue on a busy machine)
    sent again, untimed, until answered: the figures, every answer's body in order, and the
    number of refusals."""
    cpu, database, _, bodies = await _timed(app, calls, concurrency, engine)
    refused = 0
    for index, call in enumerate(calls):
        while json.loads(bodies[index] or b"{}").get("code") == "overloaded":
            refused += 1
            status, bodies[index] = await _call(app, *call)
    statuses = Counter(json.loads(b).get("code", "ok") for b in bodies)
    assert set(statuses) == {"ok"}, statuses
    return cpu, database, bodies, refused


def one_round(url: str, orders: int, concurrency: int, engine: str) -> dict[str, float]:
    rng = random.Random()

    async def run() -> dict[str, float]:
        app = service(url, without_own_middleware=False)
        warm = [("POST", "/orders", _order_body(rng)) for _ in range(50)]
        await _all_answered(app, warm, concurrency, engine)
        calls = [("POST", "/orders", _order_body(rng)) for _ in range(orders)]
        place, place_db, bodies, refused = await _all_answered(app, calls, concurrency, engine)
        ids = [json.loads(body)["id"] for body in bodies]
        paid = [("PATCH", f"/orders/{i}", b'{"status": "PAID"}') for i in ids]
        await _all_answered(app, paid, concurrency, engine)
        shipments = [("POST", f"/orders/{i}/shipments", b'{"carrier": "UPS"}') for i in ids]
        ship, ship_db, _, refused_ships = await _all_answered(app, shipments, concurrency, engine)
        return {
            "place": place,
            "place_db": place_db,
            "ship": ship,
            "ship_db": ship_db,
            "refused": refused + refused_ships,
        }

    # The JSON log lines are part of the cost; they are written, to /dev/null.
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        return uvloop.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rounds = []
    with fresh_database(args.engine) as url:
        seed_products(url, PRODUCTS)
        for _ in range(args.rounds):
            rounds.append(one_round(url, args.orders, args.concurrency, args.engine))
            figures = rounds[-1]
            print(
                f"{args.engine}: POST /orders (3 lines) {figures['place']:.0f} µs"
                + (f" + db {figures['place_db']:.0f} µs" if figures["place_db"] else "")
                + f", POST /orders/{{id}}/shipments (3 lines) {figures['ship']:.0f} µs"
                + (f" + db {figures['ship_db']:.0f} µs" if figures["ship_db"] else "")
                + f" ({figures['refused']:.0f} refused 503 and sent again)",
                flush=True,
            )
    best = {key: min(r[key] for r in rounds) for key in rounds[0]}
    print(
        f"best of {args.rounds} rounds of {args.orders}, {args.concurrency} at a time, CPU per "
        f"request: place {best['place']:.0f} µs, ship {best['ship']:.0f} µs "
        f"({best['ship'] / best['place']:.2f} of a placement)"
        + (
            f"; database server: place {best['place_db']:.0f} µs, ship {best['ship_db']:.0f} µs"
            if args.engine == "postgresql"
            else ""
        )
    )


if __name__ == "__main__":
    main()
