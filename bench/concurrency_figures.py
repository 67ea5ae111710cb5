"""Prints the concurrency and crash figures per engine (the cases tests/live/test_concurrency.py and
tests/live/test_crash.py assert), for a closing note or a report:

    .venv/bin/python -m bench.concurrency_figures
    .venv/bin/python -m bench.concurrency_figures mixed --engine postgresql --workers 4

Starts its own servers on free loopback ports (4 workers), on a temporary
SQLite file and on a fresh schema of the local PostgreSQL.

`races` (the default): sold-out orders, opposite multi-line orders, concurrent cancels, one
Idempotency-Key, 40 shipments at once of one paid order; then a SIGKILL mid-load of orders,
cancels, shipments and counts (tests/support/load.py), checked after a restart.
`mixed`: the busy shop of tests/support/mixed_load.py (multi-line orders, cancels, signed
payments, shipments, stock counts and reads from `--threads` threads for `--seconds` on 20
products of stock 40) against a server of `--workers` workers; prints each action's statuses,
the 5xx count and the 4xx codes.

After each: the ledger's figures per engine (orders, shipments, counts, movements) and the three
invariants over every product: on_hand = Σ on_hand_delta, committed = Σ committed_delta = the
units its orders hold (the service's audit, on the database), available = on_hand - committed
= stock (through the API); the crash and the mixed load also check over HTTP that each product's
on_hand is its opening on_hand + counts' corrections - units shipped (bench/stock_check.py).
"""

import argparse
import tempfile
from collections import Counter
from pathlib import Path

import httpx

from bench.stock_check import check_stock
from tests.support import mixed_load
from tests.support.databases import ENGINES, database_url
from tests.support.ledger import invariants, ledger_figures, shown_violations
from tests.support.live_server import LiveServer
from tests.support.load import INITIAL_STOCK, all_at_once, kill_mid_load, new_product, stock_of


def statuses(responses: list[httpx.Response]) -> dict:
    return dict(Counter(r.status_code for r in responses))


def ledger_line(kind: str, label: str, url: str, base: str) -> None:
    """The ledger's figures and the three invariants, as tests/support/ledger.py prints them."""
    figures = ledger_figures(url)
    figures["shown"] = shown_violations(base, figures["quantities"])
    print(
        f"{kind} {label}: ledger: {figures['products']} products, {figures['orders']} orders, "
        f"{figures['shipments']} shipments ({figures['shipped_units']} units), "
        f"{figures['counts']} counts, {figures['movements']} movements "
        f"{figures['by_reason']}; every product: {invariants(figures)}",
        flush=True,
    )


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

    ids = [new_product(base, 50)["id"] for _ in range(2)]
    placed = httpx.post(
        f"{base}/orders",
        json={
            "items": [{"product_id": ids[0], "quantity": 6}, {"product_id": ids[1], "quantity": 4}]
        },
    ).json()
    httpx.patch(f"{base}/orders/{placed['id']}", json={"status": "PAID"})

    def ship(client: httpx.Client, index: int) -> httpx.Response:
        body: dict = (
            {} if index % 5 == 0 else {"items": [{"product_id": ids[index % 2], "quantity": 1}]}
        )
        return client.post(f"/orders/{placed['id']}/shipments", json=body)

    shipped = all_at_once(40, ship, base)
    answers = Counter(f"{r.status_code} {r.json().get('code', '')}".strip() for r in shipped)
    units = sum(i["quantity"] for r in shipped if r.status_code == 201 for i in r.json()["items"])
    final = httpx.get(f"{base}/orders/{placed['id']}").json()
    print(
        f"{kind}: 40 shipments at once of one paid order of 10 units -> {dict(answers)}, "
        f"{units} units shipped, order {final['status']}"
    )


def crash(kind: str, url: str) -> None:
    ids, seen = kill_mid_load(url)
    with LiveServer(url, workers=1) as restarted:
        figures: Counter = Counter()
        found = check_stock(restarted.base_url, dict.fromkeys(ids, INITIAL_STOCK), figures=figures)
        print(
            f"{kind}: SIGKILL mid-load ({dict(seen)}) -> over HTTP after restart "
            f"{dict(figures)}, violations {found}",
            flush=True,
        )
        ledger_line(kind, "after SIGKILL and restart", url, restarted.base_url)


def mixed(kind: str, workers: int, threads: int, seconds: float) -> None:
    env = {"WEBHOOK_SECRET": mixed_load.SECRET}
    with (
        database_url(kind, Path(tempfile.mkdtemp())) as url,
        LiveServer(url, workers=workers, env=env) as server,
    ):
        tally = mixed_load.run(server.base_url, threads=threads, seconds=seconds)
        figures: Counter = Counter()
        found = check_stock(server.base_url, tally.products, figures=figures)
        print(
            f"{kind}, {workers} workers, {threads} threads, {seconds:g} s: {tally.total()} "
            f"requests {tally.by_action()}, 5xx {tally.errors_5xx()}, 4xx codes "
            f"{dict(sorted(tally.codes.items()))}; over HTTP {dict(figures)}, violations {found}",
            flush=True,
        )
        for error in tally.server_errors[:3]:
            print("  ", error[:300])
        ledger_line(kind, "after the mixed load", url, server.base_url)


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
            ledger_line(kind, "after the races", url, server.base_url)
        with database_url(kind, Path(tempfile.mkdtemp())) as url:
            crash(kind, url)


if __name__ == "__main__":
    main()
