"""A busy shop against a live server: threads placing multi-line orders, cancelling them,
paying them through the signed webhook and reading them, all on a few products at once.

Orders take stock while cancels (and failed or expired payments) give it back on the same rows,
the mix in which a stock change committed while an order waits for a product's row lock goes
both ways. Used by tests/live/test_concurrency.py and bench/concurrency_figures.py. Every
thread stops at a deadline; 127.0.0.1 only.
"""

import json
import random
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

from app import signing

SECRET = "mixed-load-webhook-secret"
ACTIONS = ("place", "cancel", "pay", "read")
WEIGHTS = (5, 2, 2, 1)


@dataclass
class Tally:
    """What the load saw: (action, status) counts and the bodies of any 5xx answers."""

    counts: Counter[tuple[str, int]] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, action: str, response: httpx.Response) -> None:
        with self.lock:
            self.counts[action, response.status_code] += 1
            if response.status_code >= 500:
                self.server_errors.append(f"{action} {response.status_code} {response.text}")

    def by_action(self) -> dict[str, dict[int, int]]:
        table: dict[str, dict[int, int]] = {}
        for (action, status), count in sorted(self.counts.items()):
            table.setdefault(action, {})[status] = count
        return table

    def total(self, action: str | None = None) -> int:
        return sum(n for (a, _), n in self.counts.items() if action in (None, a))

    def errors_5xx(self) -> int:
        return sum(n for (_, status), n in self.counts.items() if status >= 500)


def _payment(client: httpx.Client, order: dict, secret: str) -> httpx.Response:
    kind = "payment.succeeded" if random.random() < 0.8 else "payment.failed"
    body = json.dumps(
        {
            "type": kind,
            "order_id": order["id"],
            "amount": order["total"],
            "payment_id": f"pay_{uuid.uuid4().hex[:12]}",
        }
    ).encode()
    headers = signing.signed_headers([secret], f"evt_{uuid.uuid4().hex}", int(time.time()), body)
    return client.post(
        "/webhooks/payment", content=body, headers={"Content-Type": "application/json", **headers}
    )


def run(
    base_url: str,
    *,
    threads: int = 32,
    seconds: float = 15.0,
    products: int = 20,
    stock: int = 40,
    secret: str = SECRET,
    headers: dict[str, str] | None = None,
) -> Tally:
    """Create `products` products of `stock` each, then run the mix from `threads` threads
    for `seconds`; returns what was answered."""
    with httpx.Client(base_url=base_url, timeout=30, headers=headers) as client:
        ids = []
        for _ in range(products):
            body = {"sku": f"MIX-{uuid.uuid4().hex[:10]}", "name": "Mug", "price": "4.00"}
            created = client.post("/products", json={**body, "stock": stock})
            assert created.status_code == 201, created.text
            ids.append(created.json()["id"])
    tally, placed_lock = Tally(), threading.Lock()
    placed: list[dict] = []
    deadline = time.monotonic() + seconds

    def one_thread(seed: int) -> None:
        chance = random.Random(seed)
        with httpx.Client(base_url=base_url, timeout=30, headers=headers) as client:
            while time.monotonic() < deadline:
                action = chance.choices(ACTIONS, WEIGHTS)[0]
                with placed_lock:
                    order = chance.choice(placed) if placed else None
                if action == "place" or order is None:
                    lines = chance.sample(ids, chance.randint(1, 3))
                    items = [{"product_id": i, "quantity": chance.randint(1, 3)} for i in lines]
                    response = client.post("/orders", json={"items": items})
                    tally.add("place", response)
                    if response.status_code == 201:
                        with placed_lock:
                            placed.append(response.json())
                elif action == "cancel":
                    tally.add("cancel", client.delete(f"/orders/{order['id']}"))
                elif action == "pay":
                    tally.add("pay", _payment(client, order, secret))
                else:
                    tally.add("read", client.get(f"/orders/{order['id']}"))

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(one_thread, range(threads)))
    return tally
