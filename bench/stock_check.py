"""The stock conservation invariant and the ledger, checked through the API after a load run.

For every product a run created:
- conservation: stock now = stock at creation + the run's adjustments − the quantities of that
  product in the orders that are not CANCELED;
- the ledger: stock = the sum of the product's movements, and the newest one's stock_after is
  the stock (app.ledger.ledger_violations, the rule the service's own audit uses).
Only the API is used, so the check works against a deployed URL as well as a local server.
"""

import time
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from app.ledger import ledger_violations
from app.stock import ADJUSTMENT_REASONS

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
    initial: Mapping[int, int],
    current: Mapping[int, int],
    reserved: Mapping[int, int],
    adjusted: Mapping[int, int] | None = None,
) -> list[str]:
    """One message per product whose stock is not its initial stock, plus its adjustments,
    less what orders hold."""
    adjusted = adjusted or {}
    found = []
    for pid in sorted(initial):
        added = adjusted.get(pid, 0)
        expected = initial[pid] + added - reserved[pid]
        if current[pid] != expected:
            plus = f" + {added}" if added else ""
            found.append(
                f"product {pid}: stock {current[pid]}, expected {initial[pid]}{plus} - "
                f"{reserved[pid]} = {expected}"
            )
    return found


def movements_of(client: httpx.Client, product_id: int) -> list[dict[str, Any]]:
    """Every movement of a product, newest first, by cursor (no count per page)."""
    movements: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": PAGE}
    while True:
        response = client.get(f"/products/{product_id}/stock-movements", params=params)
        response.raise_for_status()
        page = response.json()
        movements += page["items"]
        if page["next"] is None:
            return movements
        params = {"limit": PAGE, "after": page["next"]}


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


def check_once(
    client: httpx.Client, initial: Mapping[int, int], figures: Counter | None = None
) -> list[str]:
    current, adjusted, ledger = {}, {}, []
    orders: dict[int, dict[str, Any]] = {}
    reasons: Counter = Counter()
    for product_id in initial:
        response = client.get(f"/products/{product_id}")
        response.raise_for_status()
        current[product_id] = response.json()["stock"]
        movements = movements_of(client, product_id)
        reasons.update(m["reason"] for m in movements)
        # A run moves stock on purpose by orders and adjustments only (never a stock_set).
        adjusted[product_id] = sum(
            m["delta"] for m in movements if m["reason"] in ADJUSTMENT_REASONS
        )
        newest = movements[0]["stock_after"] if movements else None
        total = sum(m["delta"] for m in movements)
        ledger += ledger_violations(product_id, current[product_id], total, newest)
        orders.update((order["id"], order) for order in _orders_of(client, product_id))
    reserved = reserved_quantities(orders.values(), set(initial))
    if figures is not None:
        figures.clear()
        figures.update(products=len(initial), orders=len(orders), movements=sum(reasons.values()))
        figures.update({f"movements.{reason}": n for reason, n in reasons.items()})
    return violations(initial, current, reserved, adjusted) + ledger


def check_stock(
    base_url: str,
    initial: Mapping[int, int],
    api_key: str | None = None,
    attempts: int = 5,
    figures: Counter | None = None,
) -> list[str]:
    """Violations of the invariant, [] when it holds.

    `figures`, when given, is filled with what was checked (products, orders, movements and
    movements by reason). Requests cut off when the run stopped may still commit just after
    it, and the API cannot read stock, movements and orders in one snapshot, so a mismatch is
    read again a few times, a second apart, before it counts.
    """
    with httpx.Client(base_url=base_url, headers=auth_headers(api_key), timeout=30) as client:
        for attempt in range(attempts):
            found = check_once(client, initial, figures)
            if not found:
                return []
            if attempt + 1 < attempts:
                time.sleep(1)
    return found
