"""A server killed with SIGKILL in the middle of an order load loses no stock and invents none:
after a restart, every product's stock is its initial stock minus its non-canceled orders, and
the sum of its movements (the ledger's audit)."""

import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.databases import database_url
from tests.factories import product_body
from tests.ledger import assert_ledger_holds
from tests.live_server import LiveServer

pytestmark = pytest.mark.live
INITIAL_STOCK = 500


def hammer(base_url: str, product_ids: list[int], stop: threading.Event, seen: Counter) -> None:
    """Place (and now and then cancel) orders until told to stop or the server dies."""
    rng = random.Random()
    with httpx.Client(base_url=base_url, timeout=10) as client:
        for _ in range(2_000):  # bounded: the kill comes long before
            if stop.is_set():
                return
            lines = rng.sample(product_ids, rng.randint(1, 3))
            try:
                response = client.post(
                    "/orders",
                    json={
                        "items": [
                            {"product_id": pid, "quantity": rng.randint(1, 3)} for pid in lines
                        ]
                    },
                )
                seen[response.status_code] += 1
                if response.status_code == 201 and rng.random() < 0.2:
                    client.delete(f"/orders/{response.json()['id']}")
            except httpx.HTTPError:
                seen["connection error"] += 1
                if stop.is_set():
                    return
                time.sleep(0.05)


def committed_quantities(base_url: str) -> Counter:
    taken: Counter = Counter()
    with httpx.Client(base_url=base_url, timeout=30) as client:
        offset = 0
        while True:
            page = client.get("/orders", params={"limit": 100, "offset": offset}).json()
            for order in page["items"]:
                if order["status"] != "CANCELED":
                    for item in order["items"]:
                        taken[item["product_id"]] += item["quantity"]
            offset += 100
            if offset >= page["total"]:
                return taken


def kill_mid_load(url: str, log_dir: Path | None = None) -> tuple[list[int], Counter]:
    """Seed 5 products, load a 4-worker server with orders and cancels, SIGKILL it after 2 s.

    Returns the product ids and the answers seen before the kill."""
    log_path = log_dir / "server.log" if log_dir else None
    server = LiveServer(url, workers=4, log_path=log_path).__enter__()
    try:
        ids = [
            httpx.post(
                f"{server.base_url}/products", timeout=30, json=product_body(stock=INITIAL_STOCK)
            ).json()["id"]
            for _ in range(5)
        ]
        stop, seen = threading.Event(), Counter()
        threads = [
            threading.Thread(target=hammer, args=(server.base_url, ids, stop, seen))
            for _ in range(8)
        ]
        for thread in threads:
            thread.start()
        time.sleep(2.0)
        server.stop(signal.SIGKILL)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        server.stop()
    return ids, seen


def test_sigkill_mid_load_keeps_stock_equal_to_initial_minus_live_orders(
    db_kind: str, tmp_path: Path
):
    with database_url(db_kind, tmp_path) as url:
        ids, seen = kill_mid_load(url, tmp_path)

        assert seen[201] > 0, seen  # the kill really landed mid-load
        with LiveServer(url, workers=1, log_path=tmp_path / "restart.log") as restarted:
            taken = committed_quantities(restarted.base_url)
            for pid in ids:
                stock = httpx.get(f"{restarted.base_url}/products/{pid}", timeout=30).json()
                assert stock["stock"] == INITIAL_STOCK - taken[pid], (pid, seen)
        assert_ledger_holds(url, f"SIGKILL mid-load ({dict(seen)})")
