"""The ledger and the payment window under real concurrency: real 4-worker servers, real
threads, on each engine. Each test ends with the ledger's audit on the server's database."""

import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from app import signing
from bench.stock_check import movements_of
from tests.support.ledger import assert_ledger_holds
from tests.support.load import all_at_once, new_product, stock_of

pytestmark = pytest.mark.live
WORKERS = 4
SECRET = "ledger-race-webhook-secret"
RETURNS = ("order_canceled", "order_expired")


def test_fifty_concurrent_adjustments_and_orders_on_one_product_lose_nothing(live_server):
    with live_server(workers=WORKERS) as server:
        base = server.base_url
        product_id = new_product(base, stock=60)["id"]

        def call(client: httpx.Client, index: int) -> httpx.Response:
            if index % 2:
                return client.post("/orders", json={"product_id": product_id, "quantity": 3})
            delta, reason = (5, "received") if index % 4 == 0 else (-4, "damaged")
            return client.post(
                f"/products/{product_id}/stock-adjustments",
                json={"delta": delta, "reason": reason, "reference": f"race-{index}"},
            )

        responses = all_at_once(50, call, base)

        assert {r.status_code for r in responses} <= {201, 409}, Counter(
            r.status_code for r in responses
        )
        assert {r.json()["code"] for r in responses if r.status_code == 409} <= {
            "insufficient_stock"
        }
        created = [r.json() for r in responses if r.status_code == 201]
        ordered = sum(o["items"][0]["quantity"] for o in created if "items" in o)
        adjusted = sum(m["delta"] for m in created if "delta" in m)
        stock = stock_of(base, product_id)
        assert stock == 60 + adjusted - ordered >= 0
        with httpx.Client(base_url=base, timeout=30) as client:
            history = movements_of(client, product_id)
        assert len(history) == 1 + len(created)  # the initial movement, then one per success
        assert sum(m["delta"] for m in history) == stock == history[0]["stock_after"]
        assert all(m["stock_after"] >= 0 for m in history)
        assert_ledger_holds(server.database_url, "50 concurrent adjustments and orders")


def _until(condition, timeout: float = 20.0, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"not true within {timeout} s")


def _pending(base: str) -> int:
    return httpx.get(f"{base}/orders", params={"status": "PENDING"}, timeout=30).json()["total"]


def _returns_of(client: httpx.Client, product_id: int) -> dict[int, list[str]]:
    """Per order: the reasons of the movements that gave its stock back."""
    returned: dict[int, list[str]] = {}
    for movement in movements_of(client, product_id):
        if movement["reason"] in RETURNS:
            returned.setdefault(movement["order_id"], []).append(movement["reason"])
    return returned


def test_expiry_racing_a_payment_and_a_cancel_returns_stock_at_most_once(live_server):
    ttl = 2
    env = {
        "PENDING_ORDER_TTL_SECONDS": str(ttl),
        "HOUSEKEEPING_INTERVAL_SECONDS": "0.05",
        "WEBHOOK_SECRET": SECRET,
    }
    with live_server(workers=WORKERS, env=env) as server:
        base = server.base_url
        product_id = new_product(base, stock=100)["id"]
        sent: dict[int, float] = {}

        def place(client: httpx.Client, index: int) -> httpx.Response:
            sent[index] = time.time()
            return client.post("/orders", json={"product_id": product_id, "quantity": 2})

        # Placed all at once, so that every order is placed before the first one's deadline.
        placed = all_at_once(12, place, base)
        orders = [r.json() for r in placed]
        # `expires_at` is shown to the second; the deadline is at least this, to the ms.
        deadlines = {o["id"]: sent[n] + ttl for n, o in enumerate(orders)}
        answers: dict[tuple[int, str], httpx.Response] = {}

        def pay(order: dict) -> httpx.Response:
            body = httpx.Request(
                "POST",
                "/",
                json={
                    "type": "payment.succeeded",
                    "order_id": order["id"],
                    "amount": order["total"],
                    "payment_id": f"pay_{uuid.uuid4().hex[:8]}",
                },
            ).content
            headers = signing.signed_headers(
                [SECRET], f"evt_{uuid.uuid4().hex}", int(time.time()), body
            )
            return httpx.post(
                f"{base}/webhooks/payment",
                content=body,
                headers={"Content-Type": "application/json", **headers},
                timeout=30,
            )

        def race(index: int, order: dict) -> None:
            # Each order's payment and cancel land around its deadline, where the sweepers
            # of four workers are looking for it too: sent from 500 ms before it (a request
            # under this load takes a few hundred ms to reach its order) to 100 ms after.
            assert deadlines[order["id"]] - 1 <= _seconds(order["expires_at"])
            time.sleep(max(0.0, deadlines[order["id"]] + (index % 4) * 0.2 - 0.5 - time.time()))
            barrier = threading.Barrier(2)

            def one(action: str) -> None:
                barrier.wait(timeout=10)
                if action == "pay":
                    answers[order["id"], action] = pay(order)
                else:
                    answers[order["id"], action] = httpx.delete(
                        f"{base}/orders/{order['id']}", timeout=30
                    )

            with ThreadPoolExecutor(2) as pool:
                list(pool.map(one, ("pay", "cancel")))

        with ThreadPoolExecutor(len(orders)) as pool:
            list(pool.map(race, range(len(orders)), orders))
        _until(lambda: _pending(base) == 0)

        with httpx.Client(base_url=base, timeout=30) as client:
            returned = _returns_of(client, product_id)
            finals = {o["id"]: client.get(f"/orders/{o['id']}").json() for o in orders}
        outcomes: Counter = Counter()
        for order_id, final in finals.items():
            paid, canceled = answers[order_id, "pay"], answers[order_id, "cancel"]
            assert paid.status_code in (200, 409), paid.text
            assert canceled.status_code == 200, canceled.text
            reasons = returned.get(order_id, [])
            assert final["status"] == "CANCELED"  # the cancel always lands, first or not
            assert len(reasons) == 1, (order_id, reasons)  # stock returned exactly once
            winner = {"order_canceled": "requested", "order_expired": "expired"}[reasons[0]]
            assert final["cancel_reason"] == winner, final
            if paid.status_code == 200:  # paid in time: then only the cancel could undo it
                assert winner == "requested", final
            else:
                assert paid.json()["code"] == "invalid_status_transition"
            # The cancel's answer says who won: itself, or the expiry before it.
            assert canceled.json()["cancel_reason"] == winner, canceled.json()
            outcomes[("paid, then " if paid.status_code == 200 else "") + winner] += 1
        print(f"expiry race outcomes: {dict(outcomes)}")
        assert stock_of(base, product_id) == 100
        assert_ledger_holds(server.database_url, "expiry racing payment and cancel")


def _seconds(moment: str) -> float:
    return datetime.fromisoformat(moment).timestamp()


def _metric(base: str, name: str) -> float:
    for line in httpx.get(f"{base}/metrics", timeout=30).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_expiry_at_four_workers_cancels_each_order_exactly_once(live_server, tmp_path: Path):
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = {
        "PENDING_ORDER_TTL_SECONDS": "1",
        "HOUSEKEEPING_INTERVAL_SECONDS": "0.1",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    with live_server(workers=WORKERS, env=env) as server:
        base = server.base_url
        ids = [new_product(base, stock=200)["id"] for _ in range(3)]

        def place(client: httpx.Client, index: int) -> httpx.Response:
            lines = [ids[index % 3], ids[(index + 1) % 3]][: 1 + index % 2]
            items = [{"product_id": pid, "quantity": 1 + index % 3} for pid in lines]
            return client.post("/orders", json={"items": items})

        placed = all_at_once(40, place, base)
        assert {r.status_code for r in placed} == {201}
        orders = {r.json()["id"]: r.json() for r in placed}
        assert all(o["expires_at"] is not None for o in orders.values())

        _until(lambda: _pending(base) == 0)

        with httpx.Client(base_url=base, timeout=30) as client:
            expired = Counter()
            for pid in ids:
                for order_id, reasons in _returns_of(client, pid).items():
                    assert reasons == ["order_expired"], (order_id, reasons)
                    expired[order_id] += 1
            for order_id, order in orders.items():
                final = client.get(f"/orders/{order_id}").json()
                assert (final["status"], final["cancel_reason"]) == ("CANCELED", "expired")
                assert expired[order_id] == len(order["items"])  # each line returned once
        assert [stock_of(base, pid) for pid in ids] == [200, 200, 200]
        assert _metric(base, "orders_expired_total") == len(orders)
        figures = assert_ledger_holds(server.database_url, "expiry at 4 workers")
        assert figures["expired"] == len(orders)
