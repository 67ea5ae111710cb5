"""Load test: shoppers who browse the catalog and place orders, 80% reads and 20% writes,
while a warehouse user restocks with stock adjustments and a fulfilment user takes the payment
of placed orders, ships paid ones (whole, or one unit at a time) and posts stock counts.

    bench/locust.sh light                      # 25 users, against BASE_URL or 127.0.0.1:8000
    bench/locust.sh heavy --host https://...   # 200 users, against a deployed service

At the start the run creates its own small catalog through the API (SKUs `LOAD-<run>-<n>`);
users order only from it, so at the end the stock conservation invariant can be checked over
that whole catalog (bench/stock_check.py): on_hand = its opening on_hand + the run's
adjustments and counts - the units shipped, committed = the units its orders hold, available =
on_hand - committed, and the stock ledger (both quantities the sums of each product's
movements): a violation makes the run exit non-zero. An order or a write-off refused with 409
`insufficient_stock` is an expected outcome (the catalog sells out), not a failure; so are the
409s of a shipment or a payment that a shopper's cancel overtook, and of a count that an
earlier one overtook. `API_KEY`, when set, is sent as `Authorization: Bearer <key>`; with
`WEBHOOK_SECRET` set, payments arrive as signed payment webhooks, else as a status move to PAID.
"""

import json
import logging
import os
import random
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx
from locust import HttpUser, between, events, task
from locust.env import Environment

from app import signing
from bench.stock_check import auth_headers, check_stock

API_KEY = os.environ.get("API_KEY") or None
WEBHOOK_SECRET = os.environ.get("WEBHOOK_SECRET") or None
CATALOG_SIZE = int(os.environ.get("LOCUST_CATALOG_SIZE", "20"))
RUN_ID = uuid.uuid4().hex[:8]
NAMES = [
    "Coffee mug",
    "Tea cup",
    "Water bottle",
    "Notebook",
    "Pen set",
    "Desk lamp",
    "T-shirt",
    "Hoodie",
    "Backpack",
    "Sticker pack",
]

log = logging.getLogger("locustfile")
logging.getLogger("httpx").setLevel(logging.WARNING)  # seeding and checking: one line each
# Product id -> stock it was created with; filled by `seed_catalog` before users start.
catalog: dict[int, int] = {}
stock_violations: list[str] = []


def _base_url(environment: Environment) -> str:
    return (environment.host or ShopUser.host).rstrip("/")


@events.test_start.add_listener
def seed_catalog(environment: Environment, **_: Any) -> None:
    """A small catalog of our own, through the API; a few products with little stock sell out."""
    catalog.clear()
    stock_violations.clear()
    with httpx.Client(
        base_url=_base_url(environment), headers=auth_headers(API_KEY), timeout=30
    ) as client:
        for n in range(CATALOG_SIZE):
            stock = 20 if n % 4 == 0 else 5_000
            response = client.post(
                "/products",
                json={
                    "sku": f"LOAD-{RUN_ID}-{n}",
                    "name": f"{NAMES[n % len(NAMES)]} {RUN_ID}",
                    "price": f"{random.randint(100, 9_999) / 100:.2f}",
                    "stock": stock,
                },
            )
            response.raise_for_status()
            catalog[response.json()["id"]] = stock
    log.info("seeded %d products (run %s)", len(catalog), RUN_ID)


@events.test_stop.add_listener
def check_stock_invariant(environment: Environment, **_: Any) -> None:
    if not catalog:
        return
    figures: Counter = Counter()
    found = check_stock(_base_url(environment), catalog, API_KEY, figures=figures)
    stock_violations.extend(found)
    if found:
        log.error("stock invariant VIOLATED:\n  %s", "\n  ".join(found))
    else:
        log.info(
            "stock invariant holds over %d products; ledger: %s",
            len(catalog),
            ", ".join(f"{name} {n}" for name, n in sorted(figures.items())),
        )


@events.quitting.add_listener
def fail_on_violation(environment: Environment, **_: Any) -> None:
    if stock_violations:
        environment.process_exit_code = 1


# A shopper: mostly reads (browse, filter, look at a product or an order), sometimes orders
# one to three products, and now and then cancels an order of their own.
class ShopUser(HttpUser):
    host = os.environ.get("BASE_URL", "http://127.0.0.1:8000")
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        self.client.headers.update(auth_headers(API_KEY))
        self.my_orders: list[int] = []

    # ---------------------------------------------------------------- reads (80%)

    @task(30)
    def browse_catalog(self) -> None:
        offset = random.choice([0, 0, 0, 20, 40])
        self.client.get(f"/products?limit=20&offset={offset}", name="/products?limit=20")

    @task(15)
    def filter_catalog(self) -> None:
        word = random.choice(NAMES).split()[0].lower()
        sort = random.choice(["id", "-price", "name", "-available"])
        self.client.get(
            f"/products?q={word}&in_stock=true&sort={sort}", name="/products?q=&in_stock=&sort="
        )

    @task(25)
    def read_product(self) -> None:
        self.client.get(f"/products/{random.choice(list(catalog))}", name="/products/{id}")

    @task(10)
    def read_order(self) -> None:
        if self.my_orders:
            self.client.get(f"/orders/{random.choice(self.my_orders)}", name="/orders/{id}")
        else:
            self.client.get("/orders?limit=10", name="/orders?limit=10")

    # ---------------------------------------------------------------- writes (20%)

    @task(17)
    def place_order(self) -> None:
        products = random.sample(list(catalog), k=random.randint(1, 3))
        body = {"items": [{"product_id": p, "quantity": random.randint(1, 3)} for p in products]}
        with self.client.post("/orders", json=body, catch_response=True) as response:
            if response.status_code == 201:
                self.my_orders.append(response.json()["id"])
            elif response.status_code == 409 and _code(response) == "insufficient_stock":
                response.success()  # sold out: the answer a shopper should get

    @task(3)
    def cancel_order(self) -> None:
        if self.my_orders:
            order_id = self.my_orders.pop(random.randrange(len(self.my_orders)))
            with self.client.delete(
                f"/orders/{order_id}", name="/orders/{id}", catch_response=True
            ) as response:
                if response.status_code == 409 and _code(response) == "invalid_status_transition":
                    response.success()  # shipped meanwhile: a shipped order is not canceled


# The warehouse: one user restocks (a delivery of a few units, keyed so a retry never adds
# twice), now and then writes off a damaged unit, reads a product's history, or exports the
# catalog.
class WarehouseUser(HttpUser):
    host = ShopUser.host
    fixed_count = 1
    wait_time = between(1, 3)

    def on_start(self) -> None:
        self.client.headers.update(auth_headers(API_KEY))

    @task(6)
    def receive_delivery(self) -> None:
        product = random.choice(list(catalog))
        self.client.post(
            f"/products/{product}/stock-adjustments",
            json={"delta": random.randint(1, 20), "reason": "received", "reference": RUN_ID},
            headers={"Idempotency-Key": uuid.uuid4().hex},
            name="/products/{id}/stock-adjustments",
        )

    @task(2)
    def write_off_damaged(self) -> None:
        product = random.choice(list(catalog))
        with self.client.post(
            f"/products/{product}/stock-adjustments",
            json={"delta": -1, "reason": "damaged"},
            name="/products/{id}/stock-adjustments",
            catch_response=True,
        ) as response:
            if response.status_code == 409 and _code(response) == "insufficient_stock":
                response.success()  # nothing left to write off

    @task(2)
    def read_history(self) -> None:
        product = random.choice(list(catalog))
        self.client.get(
            f"/products/{product}/stock-movements?limit=20", name="/products/{id}/stock-movements"
        )

    @task(1)
    def export_catalog(self) -> None:
        # The whole catalog, streamed: what a storefront sync pulls now and then. (No import
        # here: the run's stock check counts orders and adjustments only.)
        self.client.get("/products/export", name="/products/export")


# Fulfilment: one user who takes the payment of a placed order and ships it (everything, or one
# unit of a line, the rest later), ships what paid orders still hold, and every third round
# counts a product's shelf. It finds orders by the run's products, so it never touches orders
# of other runs or of the shop.
class FulfilmentUser(HttpUser):
    host = ShopUser.host
    fixed_count = 1
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        self.client.headers.update(auth_headers(API_KEY))
        self.rounds = 0

    @task
    def fulfil(self) -> None:
        if self.rounds % 3 == 0:
            self.count_shelf()
        self.rounds += 1
        pending = self._orders_of("PENDING")
        if pending and self._pay(pending[0]):
            self._ship(pending[0]["id"], part=random.random() < 0.5)
        for order in self._orders_of(random.choice(["PAID", "PARTIALLY_SHIPPED"]))[:2]:
            self._ship(order["id"], part=random.random() < 0.3)

    def _orders_of(self, status: str) -> list[dict[str, Any]]:
        """A few orders in `status` of one product of the run's catalog."""
        product = random.choice(list(catalog))
        response = self.client.get(
            f"/orders?product_id={product}&status={status}&limit=5",
            name="/orders?product_id=&status=",
        )
        return response.json()["items"] if response.status_code == 200 else []

    def _pay(self, order: dict[str, Any]) -> bool:
        """The payment of a placed order: a signed payment.succeeded (with WEBHOOK_SECRET), or
        a status move to PAID; a cancel may have overtaken it (409)."""
        if WEBHOOK_SECRET:
            body = json.dumps(
                {
                    "type": "payment.succeeded",
                    "order_id": order["id"],
                    "amount": order["total"],
                    "payment_id": f"pay_{uuid.uuid4().hex[:12]}",
                }
            ).encode()
            headers = signing.signed_headers(
                [WEBHOOK_SECRET], f"evt_{uuid.uuid4().hex}", int(time.time()), body
            )
            request = self.client.post(
                "/webhooks/payment",
                data=body,
                headers={"Content-Type": "application/json", **headers},
                name="/webhooks/payment",
                catch_response=True,
            )
        else:
            request = self.client.patch(
                f"/orders/{order['id']}",
                json={"status": "PAID"},
                name="/orders/{id}",
                catch_response=True,
            )
        with request as response:
            if response.status_code == 409 and _code(response) == "invalid_status_transition":
                response.success()  # canceled (or expired) before the payment arrived
            return response.status_code == 200

    def _ship(self, order_id: int, part: bool) -> None:
        body: dict[str, Any] = {"carrier": "UPS", "tracking_number": uuid.uuid4().hex[:18]}
        if part:
            order = self.client.get(f"/orders/{order_id}", name="/orders/{id}").json()
            left = [
                line["product_id"]
                for line in order.get("items", [])
                if line["quantity"] > line["quantity_shipped"] + line["quantity_released"]
            ]
            if left:
                body["items"] = [{"product_id": random.choice(left), "quantity": 1}]
        with self.client.post(
            f"/orders/{order_id}/shipments",
            json=body,
            headers={"Idempotency-Key": uuid.uuid4().hex},
            name="/orders/{id}/shipments",
            catch_response=True,
        ) as response:
            if response.status_code == 409 and _code(response) in SHIPMENT_LOST:
                response.success()

    def count_shelf(self) -> None:
        """A stocktake of one product: the units on its shelf as it showed them, counted then
        (so whatever moves after the count is kept by the service)."""
        product = random.choice(list(catalog))
        shown = self.client.get(f"/products/{product}", name="/products/{id}")
        if shown.status_code != 200:
            return
        with self.client.post(
            f"/products/{product}/stock-counts",
            json={
                "on_hand": shown.json()["on_hand"],
                "counted_at": datetime.now(UTC).isoformat(),
                "reference": RUN_ID,
            },
            name="/products/{id}/stock-counts",
            catch_response=True,
        ) as response:
            if response.status_code == 409 and _code(response) == "count_too_old":
                response.success()


# A shipment that a shopper's cancel overtook, or that finds the shelf short after a count
# found fewer units than were promised: right answers, not failures.
SHIPMENT_LOST = {"invalid_status_transition", "exceeds_remaining", "insufficient_on_hand"}


def _code(response: Any) -> str | None:
    try:
        return response.json().get("code")
    except ValueError:
        return None
