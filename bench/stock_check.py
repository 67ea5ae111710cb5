"""The stock conservation invariant, checked through the API after a load run.

For every product a run created: stock now = stock at creation − the quantities of that
product in the orders that are not CANCELED. Only the API is used, so the check works
against a deployed URL as well as a local server.
"""

import time
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

PAGE = 100


def auth_headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def reserved_quantities(
    orders: Iterable[Mapping[str, Any]], product_ids: set[int]
) -> dict[int, int]:
    """Quantities per product held by orders that still count (every status but CANCELED)."""
    reserved = dict.fromkeys(product_ids, 0)
    for order in orders:
        if order["status"] == "CANCELED":
            continue
        for line in order["items"]:
            if line["product_id"] in reserved:
                reserved[line["product_id"]] += line["quantity"]
    return reserved


def violations(
    initial: Mapping[int, int], current: Mapping[int, int], reserved: Mapping[int, int]
) -> list[str]:
    """One message per product whose stock is not its initial stock less what orders hold."""
    return [
        f"product {pid}: stock {current[pid]}, expected {initial[pid]} - {reserved[pid]} "
        f"= {initial[pid] - reserved[pid]}"
        for pid in sorted(initial)
        if current[pid] != initial[pid] - reserved[pid]
    ]


def _orders_of(client: httpx.Client, product_id: int) -> Iterable[dict[str, Any]]:
    offset = 0
    while True:
        response = client.get(
            "/orders", params={"product_id": product_id, "limit": PAGE, "offset": offset}
        )
        response.raise_for_status()
        items = response.json()["items"]
        yield from items
        if len(items) < PAGE:
            return
        offset += PAGE


def check_once(client: httpx.Client, initial: Mapping[int, int]) -> list[str]:
    current = {}
    orders: dict[int, dict[str, Any]] = {}
    for product_id in initial:
        response = client.get(f"/products/{product_id}")
        response.raise_for_status()
        current[product_id] = response.json()["stock"]
        orders.update((order["id"], order) for order in _orders_of(client, product_id))
    reserved = reserved_quantities(orders.values(), set(initial))
    return violations(initial, current, reserved)


def check_stock(
    base_url: str, initial: Mapping[int, int], api_key: str | None = None, attempts: int = 5
) -> list[str]:
    """Violations of the invariant, [] when it holds.

    Requests cut off when the run stopped may still commit just after it, and the API cannot
    read stock and orders in one snapshot, so a mismatch is read again a few times, a second
    apart, before it counts.
    """
    with httpx.Client(base_url=base_url, headers=auth_headers(api_key), timeout=30) as client:
        for attempt in range(attempts):
            found = check_once(client, initial)
            if not found:
                return []
            if attempt + 1 < attempts:
                time.sleep(1)
    return found
