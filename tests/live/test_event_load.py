"""Events under concurrent load, 4 workers, both engines: exactly one event per committed
change, and a consumer walking the feed while transactions commit sees each event once, in
the feed's final order."""

import itertools
import random
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest

from tests.live_server import LiveServer

pytestmark = pytest.mark.live
ServerFactory = Callable[..., AbstractContextManager[LiveServer]]
_skus = itertools.count(1)


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


def test_one_event_per_committed_change_and_the_feed_walk_misses_nothing(
    live_server: ServerFactory,
):
    with (
        live_server(workers=4) as server,
        httpx.Client(base_url=server.base_url, timeout=30) as api,
    ):
        products = []
        for _ in range(3):
            body = {"sku": f"LOAD-{next(_skus)}", "name": "Mug", "price": "3.00", "stock": 150}
            products.append(api.post("/products", json=body).json()["id"])
        expected: dict[str, int] = {}
        with ThreadPoolExecutor(9) as pool:
            walkers = [pool.submit(walk_while, api, expected) for _ in range(2)]
            loads = [pool.submit(shop, api, products, 25, seed) for seed in range(6)]
            made = sum((load.result(timeout=300) for load in loads), Counter[str]())
            expected["n"] = sum(made.values())
            walked = [walker.result(timeout=120) for walker in walkers]
        final = walk_while(api, expected)
        orders = api.get("/orders", params={"limit": 1}).json()["total"]

    recorded = Counter(event["type"] for event in final)
    assert made["order.created"] == orders > 50
    assert recorded == made
    assert len({event["id"] for event in final}) == len(final)
    for seen in walked:
        assert [event["id"] for event in seen] == [event["id"] for event in final]
