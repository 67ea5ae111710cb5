"""Prints the concurrency and crash figures per engine (the cases tests/live/test_concurrency.py and
tests/live/test_crash.py assert), for a closing note or a report:

    .venv/bin/python -m bench.concurrency_figures
    .venv/bin/python -m bench.concurrency_figures mixed --engine postgresql --workers 4

Starts its own servers on free loopback ports (4 workers), on a temporary
SQLite file and on a fresh schema of the local PostgreSQL.

`mixed`: the busy shop of tests/support/mixed_load.py (multi-line orders, cancels, signed payments
and reads from `--threads` threads for `--seconds` on 20 products of stock 40) against a server of
`--workers` workers; prints each action's statuses, the 5xx count and the ledger's audit.
"""

import argparse
import tempfile
from collections import Counter
from pathlib import Path

import httpx

from tests.support import mixed_load
from tests.support.databases import ENGINES, database_url
from tests.support.ledger import ledger_figures
from tests.support.live_server import LiveServer
from tests.support.load import (
    INITIAL_STOCK,
    all_at_once,
    committed_quantities,
    kill_mid_load,
    new_product,
    stock_of,
)


def statuses(responses: list[httpx.Response]) -> dict:
    return dict(Counter(r.status_code for r in responses))


def races(kind: str, base: str) -> None:
    product = new_product(base, 10)
    placed = all_at_once(
        60, lambda c, _: c.post("/orders", json={"product_id": product["id"], "quantity": 1}), base
    )
    print(
        f"{kind}: 60 orders vs stock 10 -> {statuses(placed)}, "
        f"stock {stock_of(base, product['id'])}"
    )

    ids = [new_product(base, 15)["id"] for _ in range(3)]

    def opposite(client: httpx.Client, index: int) -> httpx.Response:
        lines = ids if index % 2 else list(reversed(ids))
        return client.post(
            "/orders",
            json={
                "items": [
                    {"product_id": pid, "quantity": 1 + (index + n) % 2}
                    for n, pid in enumerate(lines)
                ]
            },
        )

    multi = all_at_once(20, opposite, base)
    taken: Counter = Counter()
    for response in multi:
        if response.status_code == 201:
            for item in response.json()["items"]:
                taken[item["product_id"]] += item["quantity"]
    print(
        f"{kind}: 20 opposite-order multi-line orders -> {statuses(multi)}, stock "
        f"{[stock_of(base, i) for i in ids]} = 15 - {[taken[i] for i in ids]}"
    )

    product = new_product(base, 10)
    order = httpx.post(f"{base}/orders", json={"product_id": product["id"], "quantity": 7}).json()
    cancels = all_at_once(10, lambda c, _: c.delete(f"/orders/{order['id']}"), base)
    print(
        f"{kind}: 10 concurrent cancels -> {statuses(cancels)}, "
        f"stock {stock_of(base, product['id'])} (10 before the order)"
    )

    product = new_product(base, 100)
    keyed = all_at_once(
        10,
        lambda c, _: c.post(
            "/orders",
            json={"product_id": product["id"], "quantity": 3},
            headers={"Idempotency-Key": "one-key"},
        ),
        base,
    )
    kinds = Counter(
        "replayed" if r.headers.get("idempotent-replayed") else r.status_code for r in keyed
    )
    orders = httpx.get(f"{base}/orders", params={"product_id": product["id"]}).json()["total"]
    print(
        f"{kind}: 10 requests with one Idempotency-Key -> {dict(kinds)}, {orders} order(s), "
        f"stock {stock_of(base, product['id'])} (100 before)"
    )


def crash(kind: str, url: str) -> None:
    ids, seen = kill_mid_load(url)
    with LiveServer(url, workers=1) as restarted:
        taken = committed_quantities(restarted.base_url)
        stocks = [httpx.get(f"{restarted.base_url}/products/{i}").json()["stock"] for i in ids]
    print(
        f"{kind}: SIGKILL mid-load ({dict(seen)}) -> stock {stocks}, "
        f"initial - live orders {[INITIAL_STOCK - taken[i] for i in ids]}"
    )


def mixed(kind: str, workers: int, threads: int, seconds: float) -> None:
    env = {"WEBHOOK_SECRET": mixed_load.SECRET}
    with (
        database_url(kind, Path(tempfile.mkdtemp())) as url,
        LiveServer(url, workers=workers, env=env) as server,
    ):
        tally = mixed_load.run(server.base_url, threads=threads, seconds=seconds)
        ledger = ledger_figures(url)
    print(
        f"{kind}, {workers} workers, {threads} threads, {seconds:g} s: {tally.total()} requests "
        f"{tally.by_action()}, 5xx {tally.errors_5xx()}; ledger: {ledger['orders']} orders, "
        f"{ledger['movements']} movements, violations {ledger['violations']}"
    )
    for error in tally.server_errors[:3]:
        print("  ", error[:300])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", nargs="?", choices=["races", "mixed"], default="races")
    parser.add_argument("--engine", choices=ENGINES, action="append")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    if args.mode == "mixed":
        for kind in args.engine or ENGINES:
            mixed(kind, args.workers, args.threads, args.seconds)
        return
    for kind in args.engine or ENGINES:
        with (
            database_url(kind, Path(tempfile.mkdtemp())) as url,
            LiveServer(url, workers=4) as server,
        ):
            races(kind, server.base_url)
        with database_url(kind, Path(tempfile.mkdtemp())) as url:
            crash(kind, url)


if __name__ == "__main__":
    main()
