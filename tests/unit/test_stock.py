"""The ledger's rules straight against the database seam: adjustments, movements, the audit."""

from collections.abc import Callable
from typing import Any

import pytest

from app import ledger, orders, products, stock
from app.core.errors import ApiError
from app.db.base import Connection, Sql
from app.schemas import OrderCreate, ProductCreate, StockAdjustmentCreate
from tests.support.factories import Db, product_body


@pytest.fixture
def run(db: Db) -> Callable[..., Any]:
    """`run(unit, *args)`: the unit in one write transaction of the service's own seam."""
    return db.write


def _product(run, stock_level: int = 10) -> int:
    body = ProductCreate.model_validate(product_body(stock=stock_level))
    return run(products.create_product, body)["id"]


def _adjustment(delta: int, reason: str = "received", **extra) -> StockAdjustmentCreate:
    return StockAdjustmentCreate.model_validate({"delta": delta, "reason": reason, **extra})


async def _history(conn: Connection, product_id: int) -> list[tuple[str, int, int]]:
    page = await stock.list_movements(conn, product_id, limit=100)
    return [(row["reason"], row["delta"], row["stock_after"]) for row in page["items"]]


async def _stock(conn: Connection, product_id: int) -> int:
    return await conn.fetch_value(
        Sql("SELECT on_hand - committed FROM products WHERE id = :id"), {"id": product_id}
    )


def test_adjust_moves_stock_by_delta_and_records_it_with_stock_after(run):
    pid = _product(run, 10)

    movement = run(stock.adjust, pid, _adjustment(7, reference="PO-1", note="late"))

    shown = ledger.movement_view(movement)
    assert {k: shown[k] for k in ("delta", "reason", "reference", "note", "stock_after")} == {
        "delta": 7,
        "reason": "received",
        "reference": "PO-1",
        "note": "late",
        "stock_after": 17,
    }
    assert run(_stock, pid) == 17
    assert run(_history, pid) == [("received", 7, 17), ("initial", 10, 10)]


def test_adjust_below_zero_raises_insufficient_stock_and_records_nothing(run):
    pid = _product(run, 2)

    with pytest.raises(ApiError) as raised:
        run(stock.adjust, pid, _adjustment(-3, "lost"))

    assert raised.value.code == "insufficient_stock"
    assert raised.value.extra == {"product_id": pid, "requested": 3, "available": 2, "on_hand": 2}
    assert run(_history, pid) == [("initial", 2, 2)]


def test_adjust_unknown_or_archived_product_is_not_found(run):
    pid = _product(run)
    run(products.archive_product, pid)

    for product_id in (pid, 999_999):
        with pytest.raises(ApiError) as raised:
            run(stock.adjust, product_id, _adjustment(1))
        assert raised.value.code == "product_not_found"


def test_a_movement_rolls_back_with_the_transaction_that_made_it(run):
    pid = _product(run, 5)

    async def adjust_then_fail(conn: Connection) -> None:
        await stock.adjust(conn, pid, _adjustment(3))
        raise ApiError.unlisted(409, code="later_failure")

    with pytest.raises(ApiError):
        run(adjust_then_fail)

    assert run(_stock, pid) == 5
    assert run(_history, pid) == [("initial", 5, 5)]


def test_every_change_of_stock_by_the_order_rules_is_a_movement(run):
    a, b = _product(run, 10), _product(run, 4)
    order = run(
        orders.place_order,
        OrderCreate.model_validate(
            {"items": [{"product_id": b, "quantity": 4}, {"product_id": a, "quantity": 3}]}
        ),
    )
    run(orders.change_status, order["id"], orders.OrderStatus.CANCELED, reason="requested")

    assert run(_history, a) == [
        ("order_canceled", 3, 10),
        ("order_placed", -3, 7),
        ("initial", 10, 10),
    ]
    assert run(_history, b) == [
        ("order_canceled", 4, 4),
        ("order_placed", -4, 0),
        ("initial", 4, 4),
    ]
    assert run(ledger.audit).violations == []


def test_a_refused_order_leaves_no_movement(run):
    plenty, scarce = _product(run, 10), _product(run, 1)
    request = OrderCreate.model_validate(
        {"items": [{"product_id": plenty, "quantity": 5}, {"product_id": scarce, "quantity": 2}]}
    )

    with pytest.raises(ApiError):
        run(orders.place_order, request)

    assert run(_history, plenty) == [("initial", 10, 10)]
    assert run(_history, scarce) == [("initial", 1, 1)]


def test_list_movements_pages_newest_first_by_offset_and_by_cursor(run):
    pid = _product(run, 1)
    for delta in (1, 2, 3):
        run(stock.adjust, pid, _adjustment(delta))

    first = run(stock.list_movements, pid, limit=2)
    rest = run(stock.list_movements, pid, limit=2, after=first["next"])
    skipped = run(stock.list_movements, pid, limit=10, offset=3)

    assert [m["delta"] for m in first["items"]] == [3, 2] and first["total"] == 4
    assert [m["delta"] for m in rest["items"]] == [1, 1]
    assert (rest["total"], rest["offset"], rest["next"]) == (None, None, None)
    assert [m["delta"] for m in skipped["items"]] == [1] and skipped["next"] is None


def test_audit_names_a_product_whose_stock_moved_outside_the_ledger(run):
    good, bad = _product(run, 5), _product(run, 5)
    run(stock.adjust, good, _adjustment(2))

    async def tamper(conn: Connection) -> None:
        await conn.execute(
            Sql("UPDATE products SET on_hand = on_hand + 1 WHERE id = :id"), {"id": bad}
        )

    run(tamper)
    audit = run(ledger.audit)

    assert audit.products == 2 and audit.movements == 3
    assert audit.by_reason == {"initial": 2, "received": 1}
    assert audit.violations == [
        f"product {bad}: on_hand 6 but its movements sum to 5",
        f"product {bad}: on_hand 6 but its newest movement says 5",
    ]


def test_audit_names_a_movement_whose_stock_after_breaks_the_running_sum(run):
    pid = _product(run, 5)
    first = run(stock.adjust, pid, _adjustment(2))
    run(stock.adjust, pid, _adjustment(3))

    async def tamper(conn: Connection) -> None:
        await conn.execute(
            Sql("UPDATE stock_movements SET on_hand_after = 99 WHERE id = :id"), {"id": first["id"]}
        )

    run(tamper)

    assert run(ledger.audit).violations == [
        f"movement {first['id']} of product {pid}: on_hand_after 99, committed_after 0 but the "
        "deltas up to it sum to 7, 0"
    ]


def _ledger_row(on_hand: int, committed: int, sums: tuple[int, int], newest, held: int):
    return {
        "product_id": 1,
        "on_hand": on_hand,
        "committed": committed,
        "on_hand_sum": sums[0],
        "committed_sum": sums[1],
        "newest_on_hand": None if newest is None else newest[0],
        "newest_committed": None if newest is None else newest[1],
        "held": held,
    }


def test_ledger_violations_of_one_product():
    assert ledger.ledger_violations(_ledger_row(5, 2, (5, 2), (5, 2), 2)) == []
    # No movement yet, nothing to hold.
    assert ledger.ledger_violations(_ledger_row(0, 0, (0, 0), None, 0)) == []
    assert ledger.ledger_violations(_ledger_row(5, 0, (4, 0), (5, 0), 0)) == [
        "product 1: on_hand 5 but its movements sum to 4"
    ]
    assert ledger.ledger_violations(_ledger_row(5, 2, (5, 2), (5, 1), 2)) == [
        "product 1: committed 2 but its newest movement says 1"
    ]
    assert ledger.ledger_violations(_ledger_row(5, 2, (5, 2), (5, 2), 3)) == [
        "product 1: committed 2 but its orders hold 3 units"
    ]


def test_audit_names_an_order_whose_refunded_amount_is_not_the_sum_of_its_refunds(run):
    pid = _product(run, 5)

    async def place_and_tamper(conn: Connection) -> int:
        order = await orders.place_order(
            conn, OrderCreate.model_validate({"product_id": pid, "quantity": 1})
        )
        await conn.execute(
            Sql(
                "UPDATE orders SET amount_paid_cents = total_cents, amount_refunded_cents = 1 "
                "WHERE id = :id"
            ),
            {"id": order["id"]},
        )
        return int(order["id"])

    order_id = run(place_and_tamper)

    assert run(ledger.audit).violations == [
        f"order {order_id}: amount_refunded 1 cents but its refunds sum to 0"
    ]
