"""Events under concurrent load, 4 workers, both engines: exactly one event per committed
change, and a consumer walking the feed while transactions commit sees each event once, in
the feed's final order."""

import itertools
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager

import httpx
import pytest

from tests.support.live_server import LiveServer
from tests.support.load import shop, walk_while

pytestmark = pytest.mark.live
ServerFactory = Callable[..., AbstractContextManager[LiveServer]]
_skus = itertools.count(1)


def test_one_event_per_committed_change_and_the_feed_walk_misses_nothing(
    live_server: ServerFactory,
):
    with (
        live_server(workers=4) as server,
        httpx.Client(base_url=server.base_url, timeout=30) as api,
    ):
        products = []
        for _ in range(3):
            # Enough units that no order takes a product to 0 (no stock.out in the count).
            body = {"sku": f"LOAD-{next(_skus)}", "name": "Mug", "price": "3.00", "stock": 1000}
            products.append(api.post("/products", json=body).json()["id"])
        expected: dict[str, int] = {}
        with ThreadPoolExecutor(9) as pool:
            walkers = [pool.submit(walk_while, api, expected) for _ in range(2)]
            loads = [pool.submit(shop, api, products, 25, seed) for seed in range(6)]
            made = sum(
                (load.result(timeout=300) for load in loads),
                Counter({"product.created": len(products)}),
            )
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
