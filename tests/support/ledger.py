"""The ledger's invariants, checked straight on a test's database after a live run: for every
product, on_hand = the sum of its movements' on_hand_delta and the newest on_hand_after;
committed = the sum of their committed_delta, the newest committed_after, and the units its
orders hold (app.ledger.audit, the service's own rule); and, through the API when a server is
given, available = on_hand - committed = stock as every product shows them."""

import asyncio
from typing import Any

import httpx

from app import ledger, stock
from app.core.config import Settings
from app.db.base import Connection, Sql
from app.db.connect import create_database

_ORDERS = Sql(
    "SELECT COUNT(*) AS orders, "
    "COALESCE(SUM(CASE WHEN cancel_reason = 'expired' THEN 1 ELSE 0 END), 0) AS expired "
    "FROM orders"
)
_SHIPMENTS = Sql(
    "SELECT COUNT(*) AS shipments, "
    "(SELECT COALESCE(SUM(quantity), 0) FROM shipment_items) AS units FROM shipments"
)
_QUANTITIES = Sql("SELECT id, on_hand, committed FROM products ORDER BY id")


async def _figures(conn: Connection) -> dict[str, Any]:
    audit = await ledger.audit(conn)
    orders = await conn.fetch_one(_ORDERS)
    shipments = await conn.fetch_one(_SHIPMENTS)
    assert orders is not None and shipments is not None
    return {
        "products": audit.products,
        "orders": int(orders["orders"]),
        "expired": int(orders["expired"]),
        "shipments": int(shipments["shipments"]),
        "shipped_units": int(shipments["units"]),
        "counts": audit.by_reason.get("counted", 0),
        "adjustments": sum(
            n for reason, n in audit.by_reason.items() if reason in stock.ADJUSTMENT_REASONS
        ),
        "movements": audit.movements,
        "by_reason": dict(sorted(audit.by_reason.items())),
        "violations": audit.violations,
        "quantities": {
            row["id"]: (row["on_hand"], row["committed"])
            for row in await conn.fetch_all(_QUANTITIES)
        },
    }


def ledger_figures(database_url: str) -> dict[str, Any]:
    """The figures of the database's ledger, through the service's own audit rule."""

    async def run() -> dict[str, Any]:
        database = create_database(Settings(_env_file=None, database_url=database_url))
        try:
            return await database.read(_figures)
        finally:
            await database.close()

    return asyncio.run(run())


def shown_violations(base_url: str, quantities: dict[int, tuple[int, int]]) -> list[str]:
    """Every product the API shows whose available is not on_hand - committed, whose stock is
    not available, or whose on_hand and committed are not the database's."""
    found, seen = [], set()
    with httpx.Client(base_url=base_url, timeout=30) as client:
        params: dict[str, Any] = {"limit": 100}
        while True:
            page = client.get("/products", params=params)
            page.raise_for_status()
            for product in page.json()["items"]:
                pid, on_hand, committed = product["id"], product["on_hand"], product["committed"]
                seen.add(pid)
                if not product["available"] == product["stock"] == on_hand - committed:
                    found.append(
                        f"product {pid}: available {product['available']}, stock "
                        f"{product['stock']}, but on_hand - committed = {on_hand - committed}"
                    )
                if quantities.get(pid) != (on_hand, committed):
                    found.append(
                        f"product {pid}: shows on_hand {on_hand}, committed {committed}; the "
                        f"database holds {quantities.get(pid)}"
                    )
            if page.json()["next"] is None:
                break
            params = {"limit": 100, "after": page.json()["next"]}
    if seen - set(quantities):  # archived products are stored and not shown
        found.append(f"products shown and not stored: {sorted(seen - set(quantities))}")
    return found


def invariants(figures: dict[str, Any]) -> str:
    """The three invariants over every product, one verdict each."""
    violations = figures["violations"]
    on_hand = [v for v in violations if "committed" not in v]
    committed = [v for v in violations if "committed" in v]
    shown = figures.get("shown")
    return (
        f"on_hand = Σ on_hand_delta: {'yes' if not on_hand else on_hand[:3]}; "
        f"committed = Σ committed_delta = units held: {'yes' if not committed else committed[:3]}; "
        "available = on_hand - committed = stock: "
        + ("not read (no server)" if shown is None else "yes" if not shown else str(shown[:3]))
    )


def assert_ledger_holds(
    database_url: str, label: str, base_url: str | None = None
) -> dict[str, Any]:
    """Fail on any product whose ledger does not add up (both quantities), or, with the
    server's `base_url`, that shows available other than on_hand - committed; print the
    figures for the record."""
    figures = ledger_figures(database_url)
    if base_url is not None:
        figures["shown"] = shown_violations(base_url, figures["quantities"])
    engine = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    print(
        f"LEDGER {engine} {label}: products {figures['products']}, orders {figures['orders']}, "
        f"shipments {figures['shipments']} ({figures['shipped_units']} units), counts "
        f"{figures['counts']}, adjustments {figures['adjustments']}, expired orders "
        f"{figures['expired']}, movements {figures['movements']} {figures['by_reason']}; "
        f"every product: {invariants(figures)}"
    )
    assert figures["products"] > 0
    assert figures["violations"] == [], figures["violations"]
    assert figures.get("shown", []) == [], figures["shown"]
    return figures
