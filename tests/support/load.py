"""Load helpers the live tests and bench/ share: calls released together, a server killed
mid-load, a shop's worth of orders, and a feed walked while they run."""

import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from tests.support.factories import product_body
from tests.support.live_server import LiveServer

INITIAL_STOCK = 500


def all_at_once(
    count: int, call: Callable[[httpx.Client, int], httpx.Response], base_url: str
) -> list[httpx.Response]:
    """Run `count` calls from `count` threads, released together by a barrier."""
    barrier = threading.Barrier(count)

    def one(index: int) -> httpx.Response:
        with httpx.Client(base_url=base_url, timeout=60) as client:
            barrier.wait(timeout=30)
            return call(client, index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def new_product(base_url: str, stock: int) -> dict:
    response = httpx.post(f"{base_url}/products", json=product_body(stock=stock), timeout=30)
    assert response.status_code == 201, response.text
    return response.json()


def stock_of(base_url: str, product_id: int) -> int:
    return httpx.get(f"{base_url}/products/{product_id}", timeout=30).json()["stock"]


def _fulfil(client: httpx.Client, order: dict, rng: random.Random, seen: Counter) -> None:
    """Pay an order (a status move) and ship it: one unit of its first line, then the rest, or
    everything at once."""
    if client.patch(f"/orders/{order['id']}", json={"status": "PAID"}).status_code != 200:
        return
    shipments = f"/orders/{order['id']}/shipments"
    if rng.random() < 0.5:
        first = order["items"][0]["product_id"]
        part = client.post(shipments, json={"items": [{"product_id": first, "quantity": 1}]})
        seen[f"shipment {part.status_code}"] += 1
    shipped = client.post(shipments, json={"carrier": "UPS"})
    seen[f"shipment {shipped.status_code}"] += 1


def _count(client: httpx.Client, product_id: int, seen: Counter) -> None:
    """A stocktake of one product: the shelf as the product showed it."""
    on_hand = client.get(f"/products/{product_id}").json()["on_hand"]
    counted = client.post(f"/products/{product_id}/stock-counts", json={"on_hand": on_hand})
    seen[f"count {counted.status_code}"] += 1


def hammer(
    base_url: str,
    product_ids: list[int],
    stop: threading.Event,
    seen: Counter,
    count_share: float = 0.0,
) -> None:
    """Place orders, cancel some, pay and ship others (whole or in two parts), and count a
    product `count_share` of the time, until told to stop or the server dies. `seen` counts the
    orders' answers by status, and the shipments' and counts' as "shipment 201", "count 201"..."""
    rng = random.Random()
    with httpx.Client(base_url=base_url, timeout=10) as client:
        for _ in range(2_000):  # bounded: the kill comes long before
            if stop.is_set():
                return
            lines = rng.sample(product_ids, rng.randint(1, 3))
            try:
                if rng.random() < count_share:
                    _count(client, rng.choice(product_ids), seen)
                    continue
                response = client.post(
                    "/orders",
                    json={
                        "items": [
                            {"product_id": pid, "quantity": rng.randint(1, 3)} for pid in lines
                        ]
                    },
                )
                seen[response.status_code] += 1
                if response.status_code == 201:
                    chance = rng.random()
                    if chance < 0.2:
                        client.delete(f"/orders/{response.json()['id']}")
                    elif chance < 0.6:
                        _fulfil(client, response.json(), rng, seen)
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
    """Seed 5 products, load a 4-worker server with orders, cancels, shipments and counts
    (`hammer`), SIGKILL it after 2 s.

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
            # One thread of the eight takes stock counts only.
            threading.Thread(
                target=hammer, args=(server.base_url, ids, stop, seen, 1.0 if n == 0 else 0.0)
            )
            for n in range(8)
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


def shop(api: httpx.Client, products: list[int], rounds: int, seed: int) -> Counter[str]:
    """Place orders and move them at random; count the changes the service said it made."""
    rng, made = random.Random(seed), Counter[str]()
    for _ in range(rounds):
        placed = api.post(
            "/orders", json={"product_id": rng.choice(products), "quantity": rng.randint(1, 3)}
        )
        if placed.status_code != 201:
            assert placed.status_code == 409, placed.text  # out of stock: no change, no event
            continue
        made["order.created"] += 1
        order_id = placed.json()["id"]
        for status, event in (("PAID", "order.paid"), ("SHIPPED", "order.shipped")):
            if rng.random() < 0.3:
                break
            moved = api.put(f"/orders/{order_id}", json={"status": status})
            assert moved.status_code == 200, moved.text
            made[event] += 1
            if status == "SHIPPED":  # a move to SHIPPED is a shipment of what remains
                made["shipment.created"] += 1
        else:
            continue
        if rng.random() < 0.5 and api.delete(f"/orders/{order_id}").status_code == 200:
            made["order.canceled"] += 1
    return made


def walk_while(api: httpx.Client, expected: dict[str, int]) -> list[dict[str, Any]]:
    """A consumer: pages with `next` while the load runs, until it has seen `expected["n"]`
    events (set once the load is over) or a minute has passed since then. On PostgreSQL, new
    events show once no older transaction runs anywhere on the server: a consumer may have to
    poll again, but it never misses one."""
    seen: list[dict[str, Any]] = []
    after: str | None = None
    deadline: float | None = None
    while True:
        page = api.get("/events", params={"limit": 7, **({"after": after} if after else {})})
        assert page.status_code == 200, page.text
        seen += page.json()["items"]
        after = page.json()["next"]
        if len(page.json()["items"]) < 7:  # caught up: stop if done, else poll again soon
            if "n" in expected:
                deadline = deadline or time.monotonic() + 60
                if len(seen) >= expected["n"] or time.monotonic() > deadline:
                    return seen
            time.sleep(0.02)
