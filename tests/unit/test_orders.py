"""The order rules through the seam: reservation, all-or-nothing, transitions, lists."""

from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from app import orders, products, shipments
from app.core.errors import ApiError
from app.schemas import OrderCreate
from app.tables import OrderStatus
from tests.support.factories import Db, Record, make_order, make_product, orders_in_db, stock_of


def move(db: Db, order_id: int, status: OrderStatus) -> Record:
    return Record(db.write(shipments.change_status, order_id, status))


def test_place_order_takes_each_lines_quantity_and_snapshots_the_product(db: Db):
    mug = make_product(db, name="Mug", price="12.50", stock=10)
    tee = make_product(db, name="Tee", price="20.00", stock=3)

    order = make_order(db, (tee, 3), (mug, 2))

    assert order.status == OrderStatus.PENDING
    assert order.total == "85.00"
    assert [(line["name"], line["quantity"], line["unit_price"]) for line in order["items"]] == [
        ("Tee", 3, "20.00"),
        ("Mug", 2, "12.50"),
    ]
    assert stock_of(db, mug.id) == 8
    assert stock_of(db, tee.id) == 0
    assert db.read(orders.order_view, order.id) == order


def test_place_order_insufficient_stock_changes_nothing(db: Db):
    plenty = make_product(db, stock=10)
    scarce = make_product(db, stock=1)

    with pytest.raises(ApiError) as raised:
        make_order(db, (plenty, 5), (scarce, 2))

    assert raised.value.code == "insufficient_stock"
    assert raised.value.extra == {"product_id": scarce.id, "requested": 2, "available": 1}
    assert stock_of(db, plenty.id) == 10
    assert stock_of(db, scarce.id) == 1
    assert orders_in_db(db) == 0


def test_the_first_refused_line_in_product_order_is_the_one_named(db: Db):
    first, second = make_product(db, stock=1), make_product(db, stock=1)

    with pytest.raises(ApiError) as raised:
        make_order(db, (second, 5), (first, 5))

    assert raised.value.extra["product_id"] == first.id
    assert (stock_of(db, first.id), stock_of(db, second.id)) == (1, 1)


def test_place_order_unknown_product_is_not_found_and_changes_nothing(db: Db):
    mug = make_product(db, stock=4)
    request = OrderCreate.model_validate(
        {"items": [{"product_id": mug.id, "quantity": 1}, {"product_id": 999, "quantity": 1}]}
    )

    with pytest.raises(ApiError) as raised:
        db.write(orders.place_order, request)

    assert (raised.value.status, raised.value.code) == (404, "product_not_found")
    assert raised.value.extra["product_id"] == 999
    assert stock_of(db, mug.id) == 4
    assert orders_in_db(db) == 0


def test_archived_product_cannot_be_ordered(db: Db):
    mug = make_product(db, stock=4)
    db.write(products.archive_product, mug.id)

    with pytest.raises(ApiError) as raised:
        make_order(db, (mug, 1))

    assert raised.value.code == "product_not_found"
    assert stock_of(db, mug.id) == 4


@pytest.mark.parametrize(
    ("path", "final"),
    [
        ([OrderStatus.PAID, OrderStatus.SHIPPED], OrderStatus.SHIPPED),
        ([OrderStatus.CANCELED], OrderStatus.CANCELED),
        ([OrderStatus.PAID, OrderStatus.CANCELED], OrderStatus.CANCELED),
    ],
)
def test_allowed_transitions(db: Db, path, final):
    order = make_order(db, (make_product(db), 1))
    for status in path:
        order = move(db, order.id, status)
    assert order["status"] == final
    assert db.value("SELECT status FROM orders WHERE id = :id", id=order["id"]) == final


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ([], OrderStatus.SHIPPED),
        ([OrderStatus.PAID, OrderStatus.SHIPPED], OrderStatus.PENDING),
        ([OrderStatus.PAID, OrderStatus.SHIPPED], OrderStatus.CANCELED),
        ([OrderStatus.CANCELED], OrderStatus.PAID),
        ([OrderStatus.PAID], OrderStatus.PENDING),
    ],
)
def test_forbidden_transitions_name_from_to_and_allowed(db: Db, path, target):
    order = make_order(db, (make_product(db), 1))
    for status in path:
        order = move(db, order["id"], status)

    with pytest.raises(ApiError) as raised:
        move(db, order["id"], target)

    error, current = raised.value, OrderStatus(order["status"])
    assert (error.status, error.code) == (409, "invalid_status_transition")
    assert error.extra["from"] == current and error.extra["to"] == target.value
    assert error.extra["allowed"] == [s.value for s in orders.TRANSITIONS[current]]
    assert db.value("SELECT status FROM orders WHERE id = :id", id=order["id"]) == current


def test_setting_the_current_status_is_a_no_op(db: Db):
    order = make_order(db, (make_product(db), 1))
    assert move(db, order.id, OrderStatus.PENDING) == db.read(orders.order_view, order.id)


@pytest.mark.parametrize("before_cancel", [[], [OrderStatus.PAID]])
def test_cancel_restocks_exactly_once(db: Db, before_cancel):
    mug, tee = make_product(db, stock=10), make_product(db, stock=5)
    order = make_order(db, (mug, 4), (tee, 5))
    for status in before_cancel:
        move(db, order.id, status)

    move(db, order.id, OrderStatus.CANCELED)
    move(db, order.id, OrderStatus.CANCELED)

    assert (stock_of(db, mug.id), stock_of(db, tee.id)) == (10, 5)


def test_a_rule_that_fails_rolls_back_what_the_unit_did_before(db: Db):
    mug = make_product(db, stock=10)
    order = make_order(db, (mug, 4))

    async def cancel_then_fail(conn):
        await orders.change_status(conn, order.id, OrderStatus.CANCELED)
        await shipments.change_status(conn, order.id, OrderStatus.SHIPPED)  # 409

    with pytest.raises(ApiError):
        db.write(cancel_then_fail)

    assert stock_of(db, mug.id) == 6
    assert db.value("SELECT status FROM orders WHERE id = :id", id=order.id) == "PENDING"


def test_order_view_of_an_unknown_order_is_not_found(db: Db):
    with pytest.raises(ApiError) as raised:
        db.read(orders.order_view, 424242)
    assert (raised.value.status, raised.value.code) == (404, "order_not_found")


def test_list_orders_filters_by_status_and_product_newest_first(db: Db):
    mug, tee = make_product(db), make_product(db)
    first = make_order(db, (mug, 1))
    second = make_order(db, (tee, 1))
    third = make_order(db, (mug, 1), (tee, 1))
    move(db, second.id, OrderStatus.PAID)

    everything = db.scan(orders.list_orders, limit=10, offset=0)
    with_mug = db.scan(orders.list_orders, limit=10, offset=0, product_id=mug.id)
    paid = db.scan(orders.list_orders, limit=10, offset=0, status=OrderStatus.PAID)

    assert [o["id"] for o in everything["items"]] == [third.id, second.id, first.id]
    assert everything["total"] == 3 and everything["next"] is None
    assert [len(o["items"]) for o in everything["items"]] == [2, 1, 1]
    assert [o["id"] for o in with_mug["items"]] == [third.id, first.id]
    assert [o["id"] for o in paid["items"]] == [second.id] and paid["total"] == 1


def test_list_orders_by_cursor_walks_every_order_once_without_a_count(db: Db):
    mug = make_product(db, stock=100)
    placed = [make_order(db, (mug, 1))["id"] for _ in range(7)]

    seen, after, pages = [], None, 0
    first = db.scan(orders.list_orders, limit=3, offset=0)
    seen, after, pages = [o["id"] for o in first["items"]], first["next"], 1
    while after is not None:
        page = db.read(orders.list_orders, limit=3, after=after)
        assert page["total"] is None and page["offset"] is None
        seen += [o["id"] for o in page["items"]]
        after, pages = page["next"], pages + 1

    assert seen == sorted(placed, reverse=True) and pages == 3


@pytest.mark.parametrize("db_kind", ["postgresql"])  # SQLite's form: test_database's group commit
def test_on_postgresql_an_order_is_one_statement_and_no_transaction_around_it(
    db: Db, monkeypatch: pytest.MonkeyPatch
):
    """Four round trips became one (bench/README.md "Round trips on PostgreSQL"): placing, the
    ledger and the order.created event in one statement, which commits by itself. SQLite's
    equivalent is its group commit."""
    if db.database.dialect != "postgresql":
        pytest.skip(
            "PostgreSQL's form of an order; SQLite's writer turn is tested in test_database"
        )
    mug, tee = make_product(db, stock=5), make_product(db, stock=5)
    sent: list[str] = []
    for method in ("execute", "fetch", "fetchrow", "fetchval"):
        original = getattr(asyncpg.Connection, method)

        def spy(self, query, *args, _original=original, **kwargs):
            sent.append(query.split()[0].upper())
            return _original(self, query, *args, **kwargs)

        monkeypatch.setattr(asyncpg.Connection, method, spy)

    order = make_order(db, (tee, 2), (mug, 1))

    assert sent == ["WITH"]
    assert (stock_of(db, mug.id), stock_of(db, tee.id)) == (4, 3)
    assert db.value("SELECT count(*) FROM stock_movements WHERE order_id = :id", id=order.id) == 2
    assert db.value("SELECT count(*) FROM events WHERE type = 'order.created'") == 1


def generic_plan(db: Db, sql: Any) -> list[str]:
    """PostgreSQL's generic plan of a statement, the one its prepared form runs after a few
    executions (EXPLAIN without ANALYZE runs nothing; a generic plan ignores the values)."""
    text, _ = sql.compiled("postgresql")

    async def explain(conn: Any) -> list[str]:
        raw = conn._raw
        types = [t.name for t in (await raw.prepare(text)).get_parameters()]
        await raw.execute("SET plan_cache_mode = force_generic_plan")
        await raw.execute(f"PREPARE generic ({', '.join(types)}) AS {text}")
        try:
            nulls = ", ".join(["NULL"] * len(types))
            return [row[0] for row in await raw.fetch(f"EXPLAIN EXECUTE generic({nulls})")]
        finally:
            await raw.execute("DEALLOCATE generic")
            await raw.execute("RESET plan_cache_mode")

    return db.read(explain)


@pytest.mark.parametrize("db_kind", ["postgresql"])
def test_on_postgresql_an_order_finds_its_products_by_key_on_a_small_catalog_too(db: Db):
    """The order's statement is prepared, so it runs a generic plan, which guesses ten lines.
    On a catalog of 1,000 products that plan once read every product twice per order (a hash
    join in the lock and in the update: 39 million rows read for 20,000 orders); each line must
    be an index lookup whatever the guess."""
    if db.database.dialect != "postgresql":
        pytest.skip("PostgreSQL's plan of its one-statement order")
    db.execute(
        "INSERT INTO products (sku, name, price_cents, on_hand, created_at, updated_at) "
        "SELECT 'P-' || i, 'Product', 100, 5, now(), now() FROM generate_series(1, 1000) AS i"
    )
    db.execute("ANALYZE products")
    plan = generic_plan(db, orders._OnPostgreSQL.PLACE_ORDER)

    scans = [line.strip() for line in plan if "Scan" in line and " on products" in line]
    assert len(scans) == 2 and all(
        s.startswith("->  Index Scan using pk_products") for s in scans
    ), "\n".join(plan)
    # The payment window's sweep locks the products of a batch of expired orders the same way.
    sweep = generic_plan(db, orders._OnPostgreSQL.LOCK_PRODUCTS_OF)
    assert not [line for line in sweep if "Seq Scan on products" in line], "\n".join(sweep)


@pytest.mark.parametrize("db_kind", ["postgresql"])
def test_on_postgresql_a_page_of_orders_looks_its_orders_and_lines_up_by_key(db: Db):
    """Pages of orders are prepared statements too; their generic plan guesses a tenth of the
    table for a page, and hash-joined every order and every line from a few thousand orders
    on (440 µs a cursor page at 2,000 orders, 170 µs by key). Only the offset page's count
    reads the whole table, as a count must."""
    if db.database.dialect != "postgresql":
        pytest.skip("PostgreSQL's plans of the orders' pages")
    db.execute(
        "INSERT INTO orders (status, total_cents, created_at, updated_at) "
        "SELECT 'PENDING', 100, now(), now() FROM generate_series(1, 3000)"
    )
    db.execute(
        "INSERT INTO order_lines (order_id, product_id, sku, name, quantity, unit_price_cents, "
        "line_total_cents) SELECT id, :product, 'P', 'P', 1, 100, 100 FROM orders",
        product=make_product(db, stock=0).id,
    )
    db.execute("ANALYZE")
    offset, cursor, by_status = (
        generic_plan(db, orders._list_sql(*shape, False, False, orders.DEFAULT_SORT))
        for shape in ((False, False, False), (False, False, True), (True, False, True))
    )

    def full_reads(plan: list[str]) -> list[str]:
        return [line.strip() for line in plan if "Seq Scan on order" in line]

    assert full_reads(cursor) == full_reads(by_status) == [], "\n".join(cursor + by_status)
    assert len(full_reads(offset)) == 1, "\n".join(offset)  # the count's, alone


def test_an_offset_page_of_orders_carries_its_count_past_the_end_too(db: Db):
    """The page, its lines and its count are one statement; a page with no rows counts alone."""
    assert db.scan(orders.list_orders, limit=5, offset=0)["total"] == 0
    mug = make_product(db, stock=10)
    placed = [make_order(db, (mug, 1)).id for _ in range(3)]
    move(db, placed[0], OrderStatus.PAID)

    second = db.scan(orders.list_orders, limit=1, offset=1)
    past = db.scan(orders.list_orders, limit=5, offset=9, status=OrderStatus.PAID)

    assert ([o["id"] for o in second["items"]], second["total"]) == ([placed[1]], 3)
    assert (past["items"], past["total"], past["next"]) == ([], 1, None)


def test_the_payment_window_closes_at_the_second_shown(db: Db):
    """`expires_at` is shown to the second; the deadline enforced is that second, not a
    microsecond later (a payment 10 ms past the shown time was once accepted)."""
    product = make_product(db, stock=3)
    request = OrderCreate.model_validate({"product_id": product.id, "quantity": 1})
    order = db.write(orders.place_order, request, payment_window=timedelta(seconds=1800))
    shown = datetime.fromisoformat(order["expires_at"])

    stored = db.read(orders.locked_order, order["id"])

    assert orders._window_closed(stored, shown)
    assert orders._window_closed(stored, shown + timedelta(milliseconds=10))
    assert not orders._window_closed(stored, shown - timedelta(microseconds=1))
    assert db.read(orders.order_view, order["id"])["expires_at"] == order["expires_at"]
