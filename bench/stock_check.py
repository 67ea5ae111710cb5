"""The stock invariants and the ledger, checked through the API after a load run.

For every product a run created:
- committed = the units its orders hold: on every line of an order that is not CANCELED,
  quantity − shipped − released;
- conservation of the shelf: on_hand now = on_hand at creation + the run's adjustments and
  count corrections − the units shipped + the units returned;
- available = on_hand − committed, and `stock` (for earlier clients) = available;
- the ledger: on_hand and committed are the sums of the product's movements' deltas, and the
  newest movement's *_after are the quantities (app.ledger.ledger_violations, the rule the
  service's own audit uses).
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
# The movements a run makes on purpose to the shelf, besides shipments and returns.
SHELF_REASONS = ADJUSTMENT_REASONS | {"counted"}


def auth_headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def held_by_orders(
    orders: Iterable[Mapping[str, Any]], product_ids: set[int]
) -> dict[int, dict[str, int]]:
    """Per product: the units orders hold (`committed`: lines of orders not CANCELED, neither
    shipped nor released), and the units they shipped and returned."""
    held = {pid: {"committed": 0, "shipped": 0, "returned": 0} for pid in product_ids}
    for order in orders:
        for line in order["items"]:
            figures = held.get(line["product_id"])
            if figures is None:
                continue
            shipped = line.get("quantity_shipped", 0)
            figures["shipped"] += shipped
            figures["returned"] += line.get("quantity_returned", 0)
            if order["status"] != "CANCELED":
                figures["committed"] += (
                    line["quantity"] - shipped - line.get("quantity_released", 0)
                )
    return held


def violations(
    initial: Mapping[int, int],
    current: Mapping[int, Mapping[str, int]],
    held: Mapping[int, Mapping[str, int]],
    adjusted: Mapping[int, int] | None = None,
) -> list[str]:
    """One message per product whose quantities do not follow from its opening on_hand, the
    run's adjustments and counts (`adjusted`), and what its orders hold, shipped and returned."""
    adjusted = adjusted or {}
    found = []
    for pid in sorted(initial):
        now, orders = current[pid], held[pid]
        added = adjusted.get(pid, 0)
        expected = initial[pid] + added - orders["shipped"] + orders["returned"]
        if now["on_hand"] != expected:
            plus = f" + {added}" if added else ""
            found.append(
                f"product {pid}: on_hand {now['on_hand']}, expected {initial[pid]}{plus} - "
                f"{orders['shipped']} shipped + {orders['returned']} returned = {expected}"
            )
        if now["committed"] != orders["committed"]:
            found.append(
                f"product {pid}: committed {now['committed']}, but its orders hold "
                f"{orders['committed']}"
            )
        available = now["on_hand"] - now["committed"]
        if now["available"] != available or now["stock"] != available:
            found.append(
                f"product {pid}: available {now['available']} and stock {now['stock']}, "
                f"but on_hand - committed = {available}"
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
    current: dict[int, dict[str, int]] = {}
    adjusted: dict[int, int] = {}
    ledger: list[str] = []
    orders: dict[int, dict[str, Any]] = {}
    reasons: Counter = Counter()
    shipments: set[int] = set()
    for product_id in initial:
        response = client.get(f"/products/{product_id}")
        response.raise_for_status()
        current[product_id] = response.json()
        movements = movements_of(client, product_id)
        reasons.update(m["reason"] for m in movements)
        shipments.update(m["shipment_id"] for m in movements if m["shipment_id"] is not None)
        # A run moves the shelf on purpose by adjustments and counts only (never a stock_set).
        adjusted[product_id] = sum(
            m["on_hand_delta"] for m in movements if m["reason"] in SHELF_REASONS
        )
        orders.update((order["id"], order) for order in _orders_of(client, product_id))
        ledger_row = {
            "product_id": product_id,
            "on_hand": current[product_id]["on_hand"],
            "committed": current[product_id]["committed"],
            "on_hand_sum": sum(m["on_hand_delta"] for m in movements),
            "committed_sum": sum(m["committed_delta"] for m in movements),
            "newest_on_hand": movements[0]["on_hand_after"] if movements else None,
            "newest_committed": movements[0]["committed_after"] if movements else None,
            # Checked against the orders below, by `violations`.
            "held": current[product_id]["committed"],
        }
        ledger += ledger_violations(ledger_row)
    held = held_by_orders(orders.values(), set(initial))
    if figures is not None:
        figures.clear()
        figures.update(
            products=len(initial),
            orders=len(orders),
            shipments=len(shipments),
            counts=reasons["counted"],
            movements=sum(reasons.values()),
            shipped_units=sum(h["shipped"] for h in held.values()),
        )
        figures.update({f"movements.{reason}": n for reason, n in reasons.items()})
    return violations(initial, current, held, adjusted) + ledger


def check_stock(
    base_url: str,
    initial: Mapping[int, int],
    api_key: str | None = None,
    attempts: int = 5,
    figures: Counter | None = None,
) -> list[str]:
    """Violations of the invariant, [] when it holds.

    `figures`, when given, is filled with what was checked (products, orders, shipments,
    counts, units shipped, movements and movements by reason). Requests cut off when the run
    stopped may still commit just after it, and the API cannot read stock, movements and
    orders in one snapshot, so a mismatch is read again a few times, a second apart, before
    it counts.
    """
    with httpx.Client(base_url=base_url, headers=auth_headers(api_key), timeout=30) as client:
        for attempt in range(attempts):
            found = check_once(client, initial, figures)
            if not found:
                return []
            if attempt + 1 < attempts:
                time.sleep(1)
    return found
