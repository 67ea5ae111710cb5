"""A bounded webhook load: signed payment events for fresh orders, each delivered twice.

    API_KEY=... WEBHOOK_SECRET=... python -m ops.webhook_load URL [ORDERS] [THREADS]

Creates one product and ORDERS orders (default 200) through the API, then THREADS threads
(default 8) deliver a signed `payment.succeeded` for every order, and then the same event
again (a provider's retry, re-signed): the first must be processed (200, duplicate false), the
second answered as a duplicate. Prints client-side latency percentiles per kind and any
unexpected answer. Needs the payment webhook (`app.signing`); talks to 127.0.0.1 only.
"""

import os
import statistics
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx

from app import signing

_local = threading.local()


def client_for_thread(base_url: str) -> httpx.Client:
    """One keep-alive client per thread: building a client per request costs milliseconds."""
    if getattr(_local, "client", None) is None:
        _local.client = httpx.Client(base_url=base_url, timeout=30)
    return _local.client


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def setup_orders(client: httpx.Client, count: int) -> list[dict]:
    product = client.post(
        "/products",
        json={
            "sku": f"WH-{uuid.uuid4().hex[:8]}",
            "name": "Webhook load",
            "price": "3.50",
            "stock": count * 2,
        },
    )
    product.raise_for_status()
    orders = []
    for _ in range(count):
        placed = client.post("/orders", json={"product_id": product.json()["id"], "quantity": 1})
        placed.raise_for_status()
        orders.append(placed.json())
    return orders


def deliver(base_url: str, secrets: list[str], order: dict, event_id: str) -> tuple[float, dict]:
    body = httpx.Request(
        "POST",
        "/",
        json={
            "type": "payment.succeeded",
            "order_id": order["id"],
            "amount": order["total"],
            "payment_id": f"pay_{event_id}",
        },
    ).content
    headers = signing.signed_headers(secrets, event_id, int(time.time()), body)
    started = time.perf_counter()
    response = client_for_thread(base_url).post(
        "/webhooks/payment", content=body, headers={**headers, "content-type": "application/json"}
    )
    elapsed = time.perf_counter() - started
    return elapsed, {"status": response.status_code, **(response.json() or {})}


def main() -> None:
    base_url = sys.argv[1].rstrip("/") if len(sys.argv) > 1 else "http://127.0.0.1:8000"
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    secrets = signing.parse_secrets(os.environ["WEBHOOK_SECRET"])
    key = os.environ.get("API_KEY")
    auth = {"Authorization": f"Bearer {key}"} if key else {}
    with httpx.Client(base_url=base_url, headers=auth, timeout=30) as client:
        orders = setup_orders(client, count)
    events = [(order, f"evt_{uuid.uuid4().hex}") for order in orders]
    unexpected = []
    with ThreadPoolExecutor(threads) as pool:
        for kind, duplicate in (("first delivery", False), ("re-delivery", True)):
            results = list(pool.map(lambda e: deliver(base_url, secrets, *e), events))
            ms = [elapsed * 1000 for elapsed, _ in results]
            unexpected += [
                r for _, r in results if r["status"] != 200 or r.get("duplicate") is not duplicate
            ]
            print(
                f"{kind:15} n={len(ms)} p50={statistics.median(ms):.1f}ms "
                f"p99={percentile(ms, 0.99):.1f}ms max={max(ms):.1f}ms"
            )
    print(f"unexpected answers: {len(unexpected)}", *unexpected[:5], sep="\n  ")
    sys.exit(1 if unexpected else 0)


if __name__ == "__main__":
    main()
