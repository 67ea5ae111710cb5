"""The ledger's invariant, checked straight on a test's database after a live run: for every
product, stock = the sum of its movements' deltas and the newest movement's stock_after."""

import asyncio
from typing import Any

from app import ledger, stock
from app.core.config import Settings
from app.db.base import Connection, Sql
from app.db.connect import create_database

_ORDERS = Sql(
    "SELECT COUNT(*) AS orders, "
    "COALESCE(SUM(CASE WHEN cancel_reason = 'expired' THEN 1 ELSE 0 END), 0) AS expired "
    "FROM orders"
)


async def _figures(conn: Connection) -> dict[str, Any]:
    audit = await ledger.audit(conn)
    orders = await conn.fetch_one(_ORDERS)
    assert orders is not None
    return {
        "products": audit.products,
        "orders": int(orders["orders"]),
        "expired": int(orders["expired"]),
        "adjustments": sum(
            n for reason, n in audit.by_reason.items() if reason in stock.ADJUSTMENT_REASONS
        ),
        "movements": audit.movements,
        "by_reason": dict(sorted(audit.by_reason.items())),
        "violations": audit.violations,
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


def assert_ledger_holds(database_url: str, label: str) -> dict[str, Any]:
    """Fail on any product whose ledger does not add up; print the figures for the record."""
    figures = ledger_figures(database_url)
    engine = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    print(
        f"LEDGER {engine} {label}: products {figures['products']}, orders {figures['orders']}, "
        f"adjustments {figures['adjustments']}, expired orders {figures['expired']}, movements "
        f"{figures['movements']} {figures['by_reason']}, stock == sum(delta) for every "
        f"product: {'yes' if not figures['violations'] else figures['violations']}"
    )
    assert figures["products"] > 0
    assert figures["violations"] == [], figures["violations"]
    return figures
