"""Stock events under real concurrency: a real 4-worker server on each engine, threads placing
and canceling orders around two products' thresholds and zero. Every crossing the ledger's
movements imply (each product's movements replayed in id order) is one event, and each
product's stock.out and stock.replenished alternate in the order of their movements."""

import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from app.ledger import crossings
from bench.stock_check import movements_of
from tests.support.factories import product_body
from tests.support.ledger import assert_ledger_holds

pytestmark = pytest.mark.live
WORKERS = 4
THREADS = 8
ROUNDS = 8
STOCK_TYPES = ("stock.low", "stock.out", "stock.replenished")


def _feed(client: httpx.Client) -> list[dict[str, Any]]:
    """Every event the feed shows now, oldest first."""
    events: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100}
    while True:
        page = client.get("/events", params=params).json()
        events += page["items"]
        if not page["items"]:
            return events
        params = {"limit": 100, "after": page["next"]}


def _feed_with(client: httpx.Client, others: int) -> list[dict[str, Any]]:
    """The feed once it shows `others` events that are not stock events (a transaction open
    elsewhere on PostgreSQL holds the feed back until it ends): the stock events were recorded
    in the same transactions as those, so they are shown too."""
    deadline = time.monotonic() + 30
    while True:
        events = _feed(client)
        if sum(e["type"] not in STOCK_TYPES for e in events) >= others:
            return events
        assert time.monotonic() < deadline, "the feed did not catch up"
        time.sleep(0.1)


def test_threshold_events_are_exactly_the_crossings_under_concurrent_orders_and_cancels(
    live_server,
):
    with (
        live_server(workers=WORKERS) as server,
        httpx.Client(base_url=server.base_url, timeout=60) as api,
    ):
        thresholds = {}
        for stock, threshold in ((6, 3), (4, 2)):
            created = api.post(
                "/products", json=product_body(stock=stock, low_stock_threshold=threshold)
            )
            assert created.status_code == 201, created.text
            thresholds[created.json()["id"]] = threshold
        products = sorted(thresholds)

        def shopper(seed: int) -> list[int]:
            chance = random.Random(seed)
            statuses = []
            with httpx.Client(base_url=server.base_url, timeout=60) as client:
                for _ in range(ROUNDS):
                    lines = chance.sample(products, chance.choice((1, 2)))
                    body = {
                        "items": [
                            {"product_id": p, "quantity": chance.choice((1, 2))} for p in lines
                        ]
                    }
                    placed = client.post("/orders", json=body)
                    statuses.append(placed.status_code)
                    if placed.status_code == 201 and chance.random() < 0.8:
                        canceled = client.delete(f"/orders/{placed.json()['id']}")
                        statuses.append(canceled.status_code)
            return statuses

        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            statuses = [s for batch in pool.map(shopper, range(THREADS)) for s in batch]
        assert set(statuses) <= {200, 201, 409}, statuses
        assert 201 in statuses and 200 in statuses

        # product.created twice, then order.created and order.canceled once per success.
        others = 2 + statuses.count(201) + statuses.count(200)
        events = [e for e in _feed_with(api, others) if e["type"] in STOCK_TYPES]
        for product_id, threshold in thresholds.items():
            history = sorted(movements_of(api, product_id), key=lambda m: m["id"])
            implied = [
                (str(event_type), movement["id"])
                for movement in history
                if movement["reason"] != "initial"  # opening units cross nothing
                for event_type in crossings(
                    movement["stock_after"] - movement["delta"], movement["stock_after"], threshold
                )
            ]
            mine = [e for e in events if e["data"]["product"]["id"] == product_id]
            recorded = sorted(
                ((e["type"], e["data"]["movement"]["id"]) for e in mine), key=lambda x: x[1]
            )
            assert recorded == implied, product_id
            assert len(implied) > 3, "the load crossed too little to test anything"
            # In the order of the movements that crossed (on PostgreSQL the feed orders by
            # transaction id, not by commit: docs/events.md), out and replenished alternate.
            zero = [kind for kind, _ in recorded if kind != "stock.low"]
            assert zero == [("stock.out", "stock.replenished")[n % 2] for n in range(len(zero))], (
                zero
            )
        assert_ledger_holds(server.database_url, "orders and cancels around thresholds")
