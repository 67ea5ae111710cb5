"""The Locust light scenario, shortened to ~20 s, against a real server: no failed request (a
5xx least of all), and the stock conservation invariant holds afterwards. Plus the check itself:
a tampered stock must fail the run."""

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

from bench.stock_check import reserved_quantities, violations
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
        assert_ledger_holds(server.database_url, "Locust light run")

    failures = _rows(tmp_path / "light_failures.csv")
    server_errors = [f for f in failures if any(f" {c}" in f["Error"] for c in range(500, 600))]
    assert server_errors == [], output[-3000:]
    assert failures == [], output[-3000:]
    assert "stock invariant holds over 20 products" in output, output[-3000:]
    assert "movements.received" in output, output[-3000:]  # the warehouse user restocked
    assert run.returncode == 0, output[-3000:]
    totals = {row["Name"]: int(row["Request Count"]) for row in _rows(tmp_path / "light_stats.csv")}
    assert totals["POST /orders" if "POST /orders" in totals else "/orders"] > 0
    assert totals["Aggregated"] > 100


def test_stock_changed_behind_the_runs_back_fails_the_run(tmp_path: Path) -> None:
    with LiveServer(
        f"sqlite:///{tmp_path / 'orders.db'}", log_path=tmp_path / "server.log"
    ) as server:
        run = _locust(server.base_url, tmp_path, "6s")
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
    assert "product 1: stock" in output
    assert run.returncode != 0


def test_invariant_counts_every_order_but_canceled_ones() -> None:
    orders = [
        {
            "status": "PENDING",
            "items": [{"product_id": 1, "quantity": 2}, {"product_id": 2, "quantity": 1}],
        },
        {"status": "SHIPPED", "items": [{"product_id": 1, "quantity": 3}]},
        {"status": "CANCELED", "items": [{"product_id": 1, "quantity": 100}]},
        {"status": "PAID", "items": [{"product_id": 99, "quantity": 5}]},
    ]
    reserved = reserved_quantities(orders, {1, 2})
    assert reserved == {1: 5, 2: 1}
    assert violations({1: 10, 2: 4}, {1: 5, 2: 3}, reserved) == []
    assert violations({1: 10, 2: 4}, {1: 6, 2: 3}, reserved) == [
        "product 1: stock 6, expected 10 - 5 = 5"
    ]


def test_invariant_counts_the_runs_adjustments() -> None:
    reserved = {1: 5, 2: 0}
    assert violations({1: 10, 2: 4}, {1: 15, 2: 3}, reserved, {1: 10, 2: -1}) == []
    assert violations({1: 10, 2: 4}, {1: 5, 2: 4}, reserved, {1: 10}) == [
        "product 1: stock 5, expected 10 + 10 - 5 = 15"
    ]
