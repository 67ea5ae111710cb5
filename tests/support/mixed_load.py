"""A busy shop against a live server: threads placing multi-line orders, cancelling them,
paying them through the signed webhook, shipping them (whole, or one unit of a line), counting
the shelf and reading orders, all on a few products at once.

Orders commit stock while cancels (and failed or expired payments) release it on the same rows,
shipments take on_hand and committed together and counts reset on_hand, the mix in which a
change committed while another waits for a product's row lock goes every way. Used by
tests/live/test_concurrency.py and bench/concurrency_figures.py. Every thread stops at a
deadline; 127.0.0.1 only.
"""

import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from app import signing

SECRET = "mixed-load-webhook-secret"
ACTIONS = ("place", "cancel", "pay", "ship", "count", "read")
WEIGHTS = (5, 2, 2, 2, 1, 1)


@dataclass
class Tally:
    """What the load saw: (action, status) counts, (action, problem code) counts of the 4xx
    answers, the bodies of any 5xx answers, and the products the load made (id -> opening
    on_hand)."""

    counts: Counter[tuple[str, int]] = field(default_factory=Counter)
    codes: Counter[tuple[str, str]] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    products: dict[int, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, action: str, response: httpx.Response) -> None:
        with self.lock:
            self.counts[action, response.status_code] += 1
            if response.status_code >= 500:
                self.server_errors.append(f"{action} {response.status_code} {response.text}")
            elif response.status_code >= 400:
                self.codes[action, response.json().get("code", "?")] += 1

    def codes_of(self, action: str) -> set[str]:
        return {code for (a, code), _ in self.codes.items() if a == action}

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


def _shipment(client: httpx.Client, order: Mapping, chance: random.Random) -> httpx.Response:
    """Every unit that remains (half the time), or one unit of one line."""
    body: dict = {"carrier": "UPS", "tracking_number": f"1Z{uuid.uuid4().hex[:16].upper()}"}
    if chance.random() < 0.5:
        body["items"] = [{"product_id": chance.choice(order["items"])["product_id"], "quantity": 1}]
    return client.post(f"/orders/{order['id']}/shipments", json=body)


def _count(client: httpx.Client, product_id: int) -> httpx.Response:
    """A stocktake of one product: the shelf as the product showed it, counted then."""
    shown = client.get(f"/products/{product_id}")
    counted_at = datetime.now(UTC).isoformat()
    return client.post(
        f"/products/{product_id}/stock-counts",
        json={"on_hand": shown.json()["on_hand"], "counted_at": counted_at, "reference": "mix"},
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
    for `seconds`; returns what was answered (and the products, in `Tally.products`)."""
    with httpx.Client(base_url=base_url, timeout=30, headers=headers) as client:
        ids = []
        for _ in range(products):
            body = {"sku": f"MIX-{uuid.uuid4().hex[:10]}", "name": "Mug", "price": "4.00"}
            created = client.post("/products", json={**body, "stock": stock})
            assert created.status_code == 201, created.text
            ids.append(created.json()["id"])
    tally, placed_lock = Tally(products=dict.fromkeys(ids, stock)), threading.Lock()
    placed: list[dict] = []
    paid: list[dict] = []  # payments answered 200 (a failed one cancels: its shipment is a 409)
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
                    paid_now = _payment(client, order, secret)
                    tally.add("pay", paid_now)
                    if paid_now.status_code == 200:
                        with placed_lock:
                            paid.append(order)
                elif action == "ship":
                    with placed_lock:  # a paid order if there is one: most ship then
                        order = chance.choice(paid) if paid else order
                    tally.add("ship", _shipment(client, order, chance))
                elif action == "count":
                    tally.add("count", _count(client, chance.choice(ids)))
                else:
                    tally.add("read", client.get(f"/orders/{order['id']}"))

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(one_thread, range(threads)))
    return tally
