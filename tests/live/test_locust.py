"""The Locust light scenario, shortened to ~20 s, against a real 4-worker server: no failed
request (a 5xx least of all) while shoppers buy, the warehouse restocks and the fulfilment user
pays, ships and counts; afterwards the stock invariants hold over HTTP (on_hand, committed,
available, the ledger: bench/stock_check.py) and on the database (the ledger's audit of both
quantities). Plus the check itself: a tampered stock must fail the run."""

import csv
import os
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest

from bench.stock_check import held_by_orders, violations
from tests.support.ledger import assert_ledger_holds
from tests.support.live_server import ROOT, LiveServer

pytestmark = pytest.mark.live


def _locust(base_url: str, reports: Path, run_time: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "API_KEY"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "locust",
            "--config",
            "bench/locust-light.conf",
            "--host",
            base_url,
            "--run-time",
            run_time,
            "--spawn-rate",
            "25",
            "--csv",
            str(reports / "light"),
            "--html",
            str(reports / "light.html"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_light_scenario_has_no_failures_and_keeps_stock_conserved(
    live_server: Callable[..., AbstractContextManager[LiveServer]], tmp_path: Path
) -> None:
    with live_server(workers=4) as server:
        run = _locust(server.base_url, tmp_path, "20s")
        output, _ = run.communicate(timeout=120)
        assert_ledger_holds(server.database_url, "Locust light run", server.base_url)

    failures = _rows(tmp_path / "light_failures.csv")
    server_errors = [f for f in failures if any(f" {c}" in f["Error"] for c in range(500, 600))]
    assert server_errors == [], output[-3000:]
    assert failures == [], output[-3000:]
    assert "stock invariant holds over 20 products" in output, output[-3000:]
    assert "movements.received" in output, output[-3000:]  # the warehouse user restocked
    assert "movements.shipped" in output, output[-3000:]  # the fulfilment user shipped
    assert "movements.counted" in output, output[-3000:]  # and counted
    assert run.returncode == 0, output[-3000:]
    totals = {row["Name"]: int(row["Request Count"]) for row in _rows(tmp_path / "light_stats.csv")}
    assert totals["POST /orders" if "POST /orders" in totals else "/orders"] > 0
    assert totals["/orders/{id}/shipments"] > 0 and totals["/products/{id}/stock-counts"] > 0
    assert totals["Aggregated"] > 100


def test_stock_changed_behind_the_runs_back_fails_the_run(tmp_path: Path) -> None:
    with LiveServer(
        f"sqlite:///{tmp_path / 'orders.db'}", log_path=tmp_path / "server.log"
    ) as server:
        # Long enough that the run time does not end while the catalog is being seeded on a
        # busy machine (the run then checks the products it made, and passes).
        run = _locust(server.base_url, tmp_path, "15s")
        # Locust's own start (gevent, its imports) can take most of a minute on a busy machine.
        deadline = time.monotonic() + 90
        while httpx.get(f"{server.base_url}/products/20").status_code != 200:
            assert run.poll() is None, "the run ended before it seeded its catalog"
            assert time.monotonic() < deadline, "the run never seeded its catalog"
            time.sleep(0.2)
        # A product update is the one thing besides orders that moves stock, and the run
        # does not know about it: the check must report the product and fail the run.
        assert (
            httpx.patch(f"{server.base_url}/products/1", json={"stock": 1_000_000}).status_code
            == 200
        )
        output, _ = run.communicate(timeout=120)

    assert "stock invariant VIOLATED" in output, output[-3000:]
    assert "product 1: on_hand" in output
    assert run.returncode != 0


def _product(on_hand: int, committed: int) -> dict[str, int]:
    available = on_hand - committed
    return {"on_hand": on_hand, "committed": committed, "available": available, "stock": available}


def test_invariant_counts_every_order_but_canceled_ones() -> None:
    orders = [
        {
            "status": "PENDING",
            "items": [{"product_id": 1, "quantity": 2}, {"product_id": 2, "quantity": 1}],
        },
        {"status": "SHIPPED", "items": [{"product_id": 1, "quantity": 3, "quantity_shipped": 3}]},
        {
            "status": "PARTIALLY_SHIPPED",
            "items": [{"product_id": 2, "quantity": 4, "quantity_shipped": 1}],
        },
        {"status": "CANCELED", "items": [{"product_id": 1, "quantity": 100}]},
        {"status": "PAID", "items": [{"product_id": 99, "quantity": 5}]},
    ]
    held = held_by_orders(orders, {1, 2})
    assert held == {
        1: {"committed": 2, "shipped": 3, "returned": 0},
        2: {"committed": 4, "shipped": 1, "returned": 0},
    }
    current = {1: _product(7, 2), 2: _product(3, 4)}
    assert violations({1: 10, 2: 4}, current, held) == []
    assert violations({1: 10, 2: 4}, {**current, 1: _product(8, 2)}, held) == [
        "product 1: on_hand 8, expected 10 - 3 shipped + 0 returned = 7"
    ]
    assert violations({1: 10, 2: 4}, {**current, 2: _product(3, 3)}, held) == [
        "product 2: committed 3, but its orders hold 4"
    ]


def test_invariant_counts_the_runs_adjustments() -> None:
    held = {
        1: {"committed": 5, "shipped": 0, "returned": 0},
        2: {"committed": 0, "shipped": 0, "returned": 0},
    }
    current = {1: _product(20, 5), 2: _product(3, 0)}
    assert violations({1: 10, 2: 4}, current, held, {1: 10, 2: -1}) == []
    assert violations({1: 10, 2: 4}, {**current, 1: _product(10, 5)}, held, {1: 10, 2: -1}) == [
        "product 1: on_hand 10, expected 10 + 10 - 0 shipped + 0 returned = 20"
    ]
