"""Alembic owns the schema: the migrations build exactly what the models describe."""

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect

from app.core.config import Settings
from app.db.connect import create_db_engine
from app.tables import SQLModel
from tests.support.databases import database_url
from tests.support.live_server import ROOT


def upgrade(connection: Connection, revision: str = "head") -> Config:
    config = Config(toml_file=str(ROOT / "pyproject.toml"))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)
    return config


def test_migrations_match_the_models(db_kind: str, tmp_path: Path):
    with database_url(db_kind, tmp_path) as url:
        engine = create_db_engine(Settings(_env_file=None, database_url=url))
        with engine.begin() as connection:
            upgrade(connection)
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
            tables = set(inspect(connection).get_table_names())
        engine.dispose()

    assert diff == []
    assert {"products", "orders", "order_lines", "idempotency_keys"} <= tables


def test_migrations_downgrade_to_nothing_and_back(db_kind: str, tmp_path: Path):
    with database_url(db_kind, tmp_path) as url:
        engine = create_db_engine(Settings(_env_file=None, database_url=url))
        with engine.begin() as connection:
            config = upgrade(connection)
            command.downgrade(config, "base")
            assert set(inspect(connection).get_table_names()) <= {"alembic_version"}
            upgrade(connection)
            assert "products" in inspect(connection).get_table_names()
        engine.dispose()


def test_a_database_of_the_previous_version_keeps_working_after_upgrade(
    db_kind: str, tmp_path: Path
):
    """Rows written by the previous version (SQLAlchemy's timestamp format, global keys) are
    read by the new data layer; an old Idempotency-Key still replays for the open API."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import text

    from app import idempotency, orders, products
    from app.db.connect import create_database
    from app.schemas import OrderCreate
    from tests.support.factories import Db

    with database_url(db_kind, tmp_path) as url:
        engine = create_db_engine(Settings(_env_file=None, database_url=url))
        then = datetime(2026, 11, 27, 9, 0, 0, 123456, tzinfo=UTC)
        with engine.begin() as connection:
            upgrade(connection, "0003")
            connection.execute(
                text(
                    "INSERT INTO products (id, sku, name, price_cents, stock, created_at, "
                    "updated_at) VALUES (1, 'OLD-1', 'Old mug', 1250, 5, :at, :at)"
                ).bindparams(at=then)
            )
            connection.execute(
                text(
                    "INSERT INTO idempotency_keys (key, request_fingerprint, status_code, "
                    "response_body, created_at) VALUES ('old-key', :fp, 201, '{\"id\": 77}', :at)"
                ).bindparams(
                    fp=idempotency.fingerprint({"items": [{"product_id": 1, "quantity": 1}]}),
                    at=datetime.now(UTC),
                )
            )
            upgrade(connection)
        engine.dispose()
        db = Db(create_database(Settings(_env_file=None, database_url=url)))
        product = db.read(products.get_product, 1)
        request = OrderCreate.model_validate({"product_id": 1, "quantity": 1})

        async def replay(conn):
            async def create(conn):
                return 201, await orders.place_order(conn, request)

            return await idempotency.once(
                conn,
                space="orders",
                principal=None,
                key="old-key",
                request=request.model_dump(mode="json", exclude_unset=True),  # as the route does
                create=create,
                ttl=timedelta(hours=24),
            )

        answer = db.write(replay)
        db.close()

    assert product["created_at"] == "2026-11-27T09:00:00Z" and product["stock"] == 5
    assert answer.replayed and answer.body == {"id": 77}


def test_the_live_product_count_starts_from_the_products_already_there(
    db_kind: str, tmp_path: Path
):
    """Migration 0007 on a catalog in use: the kept count starts at the real one, then moves."""
    from sqlalchemy import text

    insert = text(
        "INSERT INTO products (sku, name, price_cents, stock, created_at, updated_at, "
        "archived_at) VALUES (:sku, 'Mug', 100, 1, :at, :at, :archived)"
    )
    with database_url(db_kind, tmp_path) as url:
        engine = create_db_engine(Settings(_env_file=None, database_url=url))
        with engine.begin() as connection:
            upgrade(connection, "0006")
            for n, archived in enumerate((None, "2026-12-01 10:00:00", None, None)):
                connection.execute(
                    insert, {"sku": f"OLD-{n}", "at": "2026-12-01", "archived": archived}
                )
            upgrade(connection, "0007")
            kept = [connection.scalar(text("SELECT live_products FROM catalog_counts"))]
            connection.execute(insert, {"sku": "NEW-1", "at": "2026-12-02", "archived": None})
            kept.append(connection.scalar(text("SELECT live_products FROM catalog_counts")))
        engine.dispose()

    assert kept == [3, 4]


def test_subscription_and_delivery_ids_are_never_reused_after_the_upgrade(
    db_kind: str, tmp_path: Path
):
    """Migration 0008 on subscriptions and deliveries in use: every row and id is kept, each
    delivery still belongs to its subscription (deleting one still takes its deliveries), and
    the id of the newest row, once deleted, is not handed out again (SQLite reused it)."""
    from sqlalchemy import text

    at = "2026-12-01 10:00:00"
    subscribe = text(
        "INSERT INTO event_subscriptions (url, types, enabled, secret, created_at)"
        " VALUES ('http://127.0.0.1:9/', '[\"*\"]', :on, 'whsec_x', :at) RETURNING id"
    )
    event = text(
        "INSERT INTO events (id, type, txid, created_at, data)"
        " VALUES (:id, 'order.created', 0, :at, '{}') RETURNING seq"
    )
    deliver = text(
        "INSERT INTO event_deliveries (event_seq, subscription_id, attempt, status, created_at)"
        " VALUES (:seq, :sub, 0, 'pending', :at) RETURNING id"
    )
    subscriptions = "SELECT id, enabled FROM event_subscriptions ORDER BY id"
    deliveries = "SELECT id, event_seq, subscription_id FROM event_deliveries ORDER BY id"
    with database_url(db_kind, tmp_path) as url:
        engine = create_db_engine(Settings(_env_file=None, database_url=url))
        with engine.begin() as connection:
            upgrade(connection, "0007")
            subs = [connection.scalar(subscribe, {"on": on, "at": at}) for on in (True, False)]
            seq = connection.scalar(event, {"id": "evt_1", "at": at})
            for sub in subs:
                connection.execute(deliver, {"seq": seq, "sub": sub, "at": at})
            before = [connection.execute(text(q)).all() for q in (subscriptions, deliveries)]
            upgrade(connection)
            after = [connection.execute(text(q)).all() for q in (subscriptions, deliveries)]

            connection.execute(
                text("DELETE FROM event_subscriptions WHERE id = :id"), {"id": subs[1]}
            )
            left = connection.execute(text(deliveries)).all()
            newer = connection.scalar(subscribe, {"on": True, "at": at})
            connection.execute(text("DELETE FROM event_deliveries"))
            delivery = connection.scalar(deliver, {"seq": seq, "sub": newer, "at": at})
        engine.dispose()

    assert after == before
    assert [row.subscription_id for row in left] == [subs[0]]
    assert newer > subs[1]
    assert delivery > max(row.id for row in before[1])


def test_movements_and_events_from_before_actors_show_unknown_after_the_upgrade(
    db_kind: str, tmp_path: Path
):
    """Migration 0009 on a database at 0008 with movements and events: every row keeps what it
    showed, and gains `actor` `unknown`; a change made afterwards records its actor."""
    from sqlalchemy import text

    from app import stock
    from app.core.access import acting_as
    from app.db.connect import create_database
    from app.events import outbox
    from app.schemas import StockAdjustmentCreate
    from tests.support.factories import Db

    at = "2026-12-01 10:00:00"
    with database_url(db_kind, tmp_path) as url:
        engine = create_db_engine(Settings(_env_file=None, database_url=url))
        with engine.begin() as connection:
            upgrade(connection, "0008")
            connection.execute(
                text(
                    "INSERT INTO products (id, sku, name, price_cents, stock, created_at, "
                    "updated_at) VALUES (1, 'OLD-1', 'Old mug', 1250, 5, :at, :at)"
                ),
                {"at": at},
            )
            connection.execute(
                text(
                    "INSERT INTO stock_movements (product_id, delta, reason, stock_after, "
                    "created_at) VALUES (1, 5, 'initial', 5, :at)"
                ),
                {"at": at},
            )
            connection.execute(
                text(
                    "INSERT INTO events (id, type, txid, created_at, data)"
                    " VALUES ('evt_1', 'stock.adjusted', 0, :at, '{\"n\": 1}')"
                ),
                {"at": at},
            )
            upgrade(connection)
        engine.dispose()
        db = Db(create_database(Settings(_env_file=None, database_url=url)))
        old_movements = db.read(stock.list_movements, 1, limit=10)["items"]
        with acting_as("warehouse"):
            db.write(stock.adjust, 1, StockAdjustmentCreate(delta=2, reason="received"))
        movements = db.read(stock.list_movements, 1, limit=10)["items"]
        old_events, _ = db.read(outbox.feed, after=outbox.START, types=[], limit=10)
        events = db.rows("SELECT type, actor FROM events ORDER BY seq")
        db.close()

    assert old_movements == [
        {
            "id": old_movements[0]["id"],
            "product_id": 1,
            "reason": "initial",
            "on_hand_delta": 5,
            "committed_delta": 0,
            "delta": 5,
            "on_hand_after": 5,
            "committed_after": 0,
            "stock_after": 5,
            "order_id": None,
            "shipment_id": None,
            "refund_id": None,
            "reference": None,
            "note": None,
            "actor": "unknown",
            "created_at": "2026-12-01T10:00:00Z",
        }
    ]
    assert [(m["reason"], m["actor"]) for m in movements] == [
        ("received", "warehouse"),
        ("initial", "unknown"),
    ]
    assert [(e["id"], e["actor"], e["data"]) for e in old_events[:1]] == [
        ("evt_1", "unknown", {"n": 1})
    ]
    assert [(e["type"], e["actor"]) for e in events] == [
        ("stock.adjusted", "unknown"),
        ("stock.adjusted", "warehouse"),
    ]


def test_events_recorded_before_the_trace_context_column_are_kept_without_one(
    db_kind: str, tmp_path: Path
):
    """Migration 0010 on an outbox in use: every event and delivery is kept as it was, with no
    trace context (their deliveries send no `traceparent`); new events can carry one."""
    from sqlalchemy import text

    at = "2026-12-01 10:00:00"
    events = "SELECT seq, id, type, txid, data FROM events ORDER BY seq"
    with database_url(db_kind, tmp_path) as url:
        engine = create_db_engine(Settings(_env_file=None, database_url=url))
        with engine.begin() as connection:
            upgrade(connection, "0008")
            for n in (1, 2):
                connection.execute(
                    text(
                        "INSERT INTO events (id, type, txid, created_at, data)"
                        " VALUES (:id, 'order.created', 0, :at, '{}')"
                    ),
                    {"id": f"evt_{n}", "at": at},
                )
            before = connection.execute(text(events)).all()
            upgrade(connection, "0010")
            after = connection.execute(text(events)).all()
            contexts = connection.execute(text("SELECT traceparent FROM events")).scalars().all()
            traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            connection.execute(
                text(
                    "INSERT INTO events (id, type, txid, created_at, data, traceparent)"
                    " VALUES ('evt_3', 'order.paid', 0, :at, '{}', :traceparent)"
                ),
                {"at": at, "traceparent": traceparent},
            )
            kept = connection.scalar(text("SELECT traceparent FROM events WHERE id = 'evt_3'"))
        engine.dispose()

    assert after == before and len(after) == 2
    assert contexts == [None, None]
    assert kept == traceparent


# The tables a client's answers are read from, with the columns they had at 0007.
_SEEN_AT_0007 = {
    "products": "id, sku, name, price_cents, stock, archived_at",
    "orders": "id, status, total_cents, cancel_reason, expires_at",
    "order_lines": "order_id, product_id, sku, name, quantity, unit_price_cents",
    "stock_movements": "id, product_id, delta, reason, order_id, stock_after",
    "events": "seq, id, type, data",
    "event_subscriptions": "id, url, types, enabled",
}


def test_a_shop_at_0007_upgrades_to_0010_with_every_value_kept(db_kind: str, tmp_path: Path):
    """A database at 0007 with orders in every state, their lines, movements, events and a
    subscription, upgraded to 0010: every row keeps every value it had (0011, which changes
    how quantities are stored, has its own test below)."""
    from sqlalchemy import text

    at = "2026-12-01 10:00:00"
    statuses = ["PENDING", "PAID", "SHIPPED", "CANCELED"]
    with database_url(db_kind, tmp_path) as url:
        engine = create_db_engine(Settings(_env_file=None, database_url=url))
        with engine.begin() as connection:
            upgrade(connection, "0007")
            run = lambda sql, **p: connection.execute(text(sql), {"at": at, **p})  # noqa: E731
            run(
                "INSERT INTO products (id, sku, name, price_cents, stock, created_at, updated_at)"
                " VALUES (1, 'MUG-1', 'Mug', 1250, 20, :at, :at)"
            )
            for n, status in enumerate(statuses, start=1):
                run(
                    "INSERT INTO orders (id, status, total_cents, created_at, updated_at,"
                    " cancel_reason, expires_at) VALUES (:id, :status, 2500, :at, :at,"
                    " :reason, :at)",
                    id=n,
                    status=status,
                    reason="customer" if status == "CANCELED" else None,
                )
                run(
                    "INSERT INTO order_lines (order_id, product_id, sku, name, quantity,"
                    " unit_price_cents, line_total_cents) VALUES (:id, 1, 'MUG-1', 'Mug', 2,"
                    " 1250, 2500)",
                    id=n,
                )
                run(
                    "INSERT INTO stock_movements (product_id, delta, reason, order_id,"
                    " stock_after, created_at) VALUES (1, -2, 'order_placed', :id, :after, :at)",
                    id=n,
                    after=30 - 2 * n,
                )
                run(
                    "INSERT INTO events (id, type, txid, created_at, data) VALUES"
                    " (:eid, 'order.created', 0, :at, '{\"n\": 1}')",
                    eid=f"evt_{n}",
                )
            run(
                "INSERT INTO event_subscriptions (url, types, description, secret, enabled,"
                " created_at) VALUES ('https://shop.example/hooks', '[\"*\"]', NULL,"
                " 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', true, :at)"
            )
            before = {
                table: connection.execute(text(f"SELECT {columns} FROM {table} ORDER BY 1")).all()
                for table, columns in _SEEN_AT_0007.items()
            }
            upgrade(connection, "0010")
            after = {
                table: connection.execute(text(f"SELECT {columns} FROM {table} ORDER BY 1")).all()
                for table, columns in _SEEN_AT_0007.items()
            }
        engine.dispose()

    assert after == before


# A shop at 0010, the head before two quantities: what it holds, written through that schema.
# Product 1: 30 opening units, four orders of 2 (PENDING, PAID, SHIPPED, CANCELED: that one's
# units came back), a delivery of 5 and a breakage of 1: stock 28. Product 2: 7 units, never
# ordered. Product 3: archived, 3 units, one PAID order of 1 still open.
_SHOP_AT_0010 = [
    "INSERT INTO products (id, sku, name, price_cents, stock, created_at, updated_at,"
    " archived_at) VALUES (1, 'MUG-1', 'Mug', 1250, 28, :at, :at, NULL),"
    " (2, 'TEE-1', 'Tee', 2000, 7, :at, :at, NULL), (3, 'OLD-1', 'Old', 500, 2, :at, :at, :at)",
    *(
        "INSERT INTO orders (id, status, total_cents, created_at, updated_at, cancel_reason)"
        f" VALUES ({n}, '{status}', {cents}, :at, :at, {reason})"
        for n, status, cents, reason in (
            (1, "PENDING", 2500, "NULL"),
            (2, "PAID", 2500, "NULL"),
            (3, "SHIPPED", 2500, "NULL"),
            (4, "CANCELED", 2500, "'requested'"),
            (5, "PAID", 500, "NULL"),
        )
    ),
    *(
        "INSERT INTO order_lines (order_id, product_id, sku, name, quantity, unit_price_cents,"
        f" line_total_cents) VALUES ({n}, {product}, '{sku}', 'x', {q}, {cents}, {q * cents})"
        for n, product, sku, q, cents in (
            (1, 1, "MUG-1", 2, 1250),
            (2, 1, "MUG-1", 2, 1250),
            (3, 1, "MUG-1", 2, 1250),
            (4, 1, "MUG-1", 2, 1250),
            (5, 3, "OLD-1", 1, 500),
        )
    ),
    *(
        "INSERT INTO stock_movements (product_id, delta, reason, order_id, stock_after,"
        f" created_at, actor) VALUES ({product}, {delta}, '{reason}', {order}, {after}, :at,"
        " 'key1')"
        for product, delta, reason, order, after in (
            (1, 30, "initial", "NULL", 30),
            (1, -2, "order_placed", 1, 28),
            (1, -2, "order_placed", 2, 26),
            (1, -2, "order_placed", 3, 24),
            (1, -2, "order_placed", 4, 22),
            (1, 2, "order_canceled", 4, 24),
            (1, 5, "received", "NULL", 29),
            (1, -1, "damaged", "NULL", 28),
            (2, 7, "initial", "NULL", 7),
            (3, 3, "initial", "NULL", 3),
            (3, -1, "order_placed", 5, 2),
        )
    ),
]


def test_a_shop_at_the_previous_head_upgrades_to_two_quantities_with_nothing_a_client_saw_changed(
    db_kind: str, tmp_path: Path
):
    """Migration 0011 on a shop in use (orders PENDING, PAID, SHIPPED and CANCELED, adjustments,
    an archived product with an open order): `available` and `stock` are the old stock to the
    unit, every movement shows the `delta` and `stock_after` it showed, orders show their
    status, total and lines, and the ledger holds for both quantities; the shop then ships
    and cancels the orders it had open."""
    from sqlalchemy import text

    from app import ledger, orders, products, shipments, stock
    from app.db.connect import create_database
    from app.schemas import ShipmentCreate
    from app.tables import OrderStatus
    from tests.support.factories import Db

    at = "2026-12-01 10:00:00"
    with database_url(db_kind, tmp_path) as url:
        engine = create_db_engine(Settings(_env_file=None, database_url=url))
        with engine.begin() as connection:
            upgrade(connection, "0010")
            for statement in _SHOP_AT_0010:
                connection.execute(text(statement), {"at": at})
            seen = {
                "stock": dict(connection.execute(text("SELECT id, stock FROM products")).all()),
                "movements": connection.execute(
                    text(
                        "SELECT id, product_id, reason, delta, stock_after, order_id, actor "
                        "FROM stock_movements ORDER BY id"
                    )
                ).all(),
                "orders": connection.execute(
                    text(
                        "SELECT o.id, o.status, o.total_cents, l.product_id, l.quantity "
                        "FROM orders o JOIN order_lines l ON l.order_id = o.id ORDER BY o.id"
                    )
                ).all(),
            }
            upgrade(connection)
        engine.dispose()

        db = Db(create_database(Settings(_env_file=None, database_url=url)))
        quantities = {
            pid: db.value("SELECT on_hand || ',' || committed FROM products WHERE id = :id", id=pid)
            for pid in (1, 2, 3)
        }
        shown = {pid: db.read(products.get_product, pid) for pid in (1, 2)}
        # Product 3 is archived (404 to every product call): its movements read directly.
        movements = [
            *(m for pid in (1, 2) for m in db.read(stock.list_movements, pid, limit=50)["items"]),
            *map(
                ledger.movement_view,
                db.rows(f"SELECT {ledger.COLUMNS} FROM stock_movements WHERE product_id = 3"),
            ),
        ]
        order_views = {n: db.read(orders.order_view, n) for n in range(1, 6)}
        audit = db.read(ledger.audit)
        # The shop carries on: the PENDING order is canceled, the PAID ones ship.
        db.write(orders.change_status, 1, OrderStatus.CANCELED)
        db.write(shipments.create_shipment, 2, ShipmentCreate())
        db.write(shipments.create_shipment, 5, ShipmentCreate())
        after_use = {pid: db.read(products.get_product, pid) for pid in (1, 2)}
        archived = db.value("SELECT on_hand || ',' || committed FROM products WHERE id = 3")
        audit_after_use = db.read(ledger.audit)
        db.close()

    # available (and stock) are the old stock; open orders' units are on the shelf, committed.
    assert quantities == {1: "32,4", 2: "7,0", 3: "3,1"}
    assert {pid: (p["stock"], p["available"]) for pid, p in shown.items()} == {
        1: (28, 28),
        2: (7, 7),
    }
    # Every movement shows what it showed, and one `migrated` per product with open orders.
    kept = sorted(
        (
            m["id"],
            m["product_id"],
            m["reason"],
            m["delta"],
            m["stock_after"],
            m["order_id"],
            m["actor"],
        )
        for m in movements
        if m["reason"] != "migrated"
    )
    assert kept == sorted(tuple(row) for row in seen["movements"])
    migrated = sorted(
        (m["product_id"], m["on_hand_delta"], m["committed_delta"], m["delta"], m["stock_after"])
        for m in movements
        if m["reason"] == "migrated"
    )
    assert migrated == [(1, 4, 4, 0, 28), (3, 1, 1, 0, 2)]
    assert [
        (v["id"], v["status"], v["total"], v["items"][0]["product_id"], v["items"][0]["quantity"])
        for v in order_views.values()
    ] == [
        (n, status, f"{cents / 100:.2f}", product, q)
        for n, status, cents, product, q in seen["orders"]
    ]
    assert order_views[3]["items"][0]["quantity_shipped"] == 2
    assert order_views[2]["items"][0]["quantity_shipped"] == 0
    assert audit.violations == [] and audit.products == 3
    # Canceling releases 2, shipping takes 2 off the shelf: 30 on hand, nothing committed.
    assert (after_use[1]["on_hand"], after_use[1]["committed"], after_use[1]["stock"]) == (
        30,
        0,
        30,
    )
    assert archived == "2,0"
    assert audit_after_use.violations == []


def test_payment_events_from_before_providers_are_the_payment_webhooks_and_stay_exactly_once(
    db_kind: str, tmp_path: Path
):
    """Migration 0013 on a shop with payment events: each keeps every value it had and is the
    payment webhook's; a repeat of one is still a duplicate, and the same id from Stripe is
    another event, applied to its own order."""
    from sqlalchemy import text

    from app import orders, payments
    from app.db.connect import create_database
    from app.tables import PaymentProvider
    from tests.support.factories import Db

    at = "2026-12-01 10:00:00"
    seen = (
        "SELECT id, event_id, order_id, type, payment_id, amount_cents, raw_body"
        " FROM payment_events"
    )
    with database_url(db_kind, tmp_path) as url:
        engine = create_db_engine(Settings(_env_file=None, database_url=url))
        with engine.begin() as connection:
            upgrade(connection, "0010")
            run = lambda sql, **p: connection.execute(text(sql), {"at": at, **p})  # noqa: E731
            run(
                "INSERT INTO products (id, sku, name, price_cents, stock, created_at, updated_at)"
                " VALUES (1, 'MUG-1', 'Mug', 1250, 20, :at, :at)"
            )
            for n, status in ((1, "PAID"), (2, "PENDING")):
                run(
                    "INSERT INTO orders (id, status, total_cents, created_at, updated_at)"
                    " VALUES (:id, :status, 1250, :at, :at)",
                    id=n,
                    status=status,
                )
                run(
                    "INSERT INTO order_lines (order_id, product_id, sku, name, quantity,"
                    " unit_price_cents, line_total_cents) VALUES (:id, 1, 'MUG-1', 'Mug', 1,"
                    " 1250, 1250)",
                    id=n,
                )
            run(
                "INSERT INTO payment_events (event_id, order_id, type, payment_id, amount_cents,"
                " raw_body, signed_at, processed_at) VALUES ('evt_shared', 1,"
                " 'payment.succeeded', 'pay_1', 1250, '{}', :at, :at)"
            )
            before = connection.execute(text(seen)).all()
            upgrade(connection)
            after = connection.execute(text(seen)).all()
            providers = connection.execute(text("SELECT provider FROM payment_events")).all()
        engine.dispose()
        db = Db(create_database(Settings(_env_file=None, database_url=url)))

        def payment(provider: PaymentProvider, order_id: int) -> payments.Payment:
            return payments.Payment(
                provider,
                "evt_shared",
                1_790_000_000,
                b"{}",
                "payment.succeeded",
                order_id,
                1250,
                None,
                "pi_1",
            )

        repeat = db.write(payments.apply_payment, payment(PaymentProvider.PAYMENT, 2))
        from_stripe = db.write(payments.apply_payment, payment(PaymentProvider.STRIPE, 2))
        second = db.read(orders.order_view, 2)
        db.close()

    assert after == before and len(after) == 1
    assert providers == [("payment",)]
    assert (repeat["duplicate"], repeat["order_id"]) == (True, 1)
    assert (from_stripe["duplicate"], from_stripe["order_id"]) == (False, 2)
    assert second["status"] == "PAID" and second["currency"] == "USD"


def test_the_catalog_revision_keeps_products_and_events_and_allows_product_events(
    db_kind: str, tmp_path: Path
):
    """Migration 0015 (the catalog's) on a shop at 0010: every product and event (and delivery)
    is kept as it was, products have no threshold, and the outbox takes the product events."""
    from sqlalchemy import text

    at = "2026-12-01 10:00:00"
    seen = {
        "products": "SELECT id, sku, name, price_cents, archived_at FROM products",
        "events": "SELECT seq, id, type, data FROM events ORDER BY seq",
        "event_deliveries": "SELECT id, event_seq, subscription_id, status FROM event_deliveries",
    }
    with database_url(db_kind, tmp_path) as url:
        engine = create_db_engine(Settings(_env_file=None, database_url=url))
        with engine.begin() as connection:
            upgrade(connection, "0010")
            connection.execute(
                text(
                    "INSERT INTO products (id, sku, name, price_cents, stock, created_at, "
                    "updated_at) VALUES (1, 'MUG-1', 'Mug', 1250, 5, :at, :at)"
                ),
                {"at": at},
            )
            connection.execute(
                text(
                    "INSERT INTO events (id, type, txid, created_at, data)"
                    " VALUES ('evt_1', 'stock.adjusted', 0, :at, '{}')"
                ),
                {"at": at},
            )
            connection.execute(
                text(
                    "INSERT INTO event_subscriptions (id, url, types, enabled, secret, created_at)"
                    " VALUES (1, 'https://example.com/hook', '[\"*\"]', true, 'whsec_x', :at)"
                ),
                {"at": at},
            )
            connection.execute(
                text(
                    "INSERT INTO event_deliveries (event_seq, subscription_id, attempt, status,"
                    " created_at) SELECT seq, 1, 0, 'pending', :at FROM events"
                ),
                {"at": at},
            )
            before = {table: connection.execute(text(sql)).all() for table, sql in seen.items()}
            upgrade(connection)
            after = {table: connection.execute(text(sql)).all() for table, sql in seen.items()}
            thresholds = (
                connection.execute(text("SELECT low_stock_threshold FROM products")).scalars().all()
            )
            for n, type_ in enumerate(("product.created", "product.updated", "product.archived")):
                connection.execute(
                    text(
                        "INSERT INTO events (id, type, txid, created_at, data)"
                        " VALUES (:id, :type, 0, :at, '{}')"
                    ),
                    {"id": f"evt_p{n}", "type": type_, "at": at},
                )
            refused = connection.begin_nested()
            try:
                connection.execute(
                    text(
                        "INSERT INTO events (id, type, txid, created_at, data)"
                        " VALUES ('evt_x', 'product.lost', 0, :at, '{}')"
                    ),
                    {"at": at},
                )
                unknown_type_refused = False
            except Exception:
                unknown_type_refused = True
            refused.rollback()
        engine.dispose()

    assert after == before
    assert len(after["event_deliveries"]) == 1
    assert thresholds == [None]
    assert unknown_type_refused


def test_subscriptions_at_0013_upgrade_unchanged_with_one_secret_and_no_failing_clock(
    db_kind: str, tmp_path: Path
):
    """Migration 0014 on subscriptions, events and deliveries in use: every row keeps every
    value a client saw; each subscription signs with its one secret, has no failing clock, and
    is enabled or not as before; the outbox takes `subscription.disabled` and still refuses an
    unknown type; the deliveries still reference their events and subscriptions."""
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    at = "2026-12-01 10:00:00"
    seen = {
        "event_subscriptions": "id, url, types, description, enabled, secret, created_at",
        "events": "seq, id, type, txid, created_at, actor, data",
        "event_deliveries": "id, event_seq, subscription_id, attempt, status, response_status,"
        " error, duration_ms, next_attempt_at",
    }
    with database_url(db_kind, tmp_path) as url:
        engine = create_db_engine(Settings(_env_file=None, database_url=url))
        with engine.begin() as connection:
            upgrade(connection, "0013")
            run = lambda sql, **p: connection.execute(text(sql), {"at": at, **p})  # noqa: E731
            for n, on in enumerate((True, False), start=1):
                run(
                    "INSERT INTO event_subscriptions (url, types, description, enabled, secret,"
                    " created_at) VALUES (:url, '[\"order.paid\"]', 'erp', :on, :secret, :at)",
                    url=f"https://shop.example/hooks/{n}",
                    on=on,
                    secret=f"whsec_c2VjcmV0{n}",
                )
            for n, kind in enumerate(("order.created", "order.paid"), start=1):
                run(
                    "INSERT INTO events (id, type, txid, created_at, data, actor)"
                    " VALUES (:id, :kind, 0, :at, '{\"n\": 1}', 'shop')",
                    id=f"evt_{n}",
                    kind=kind,
                )
            for status, response in (("failed", 500), ("delivered", 200)):
                run(
                    "INSERT INTO event_deliveries (event_seq, subscription_id, attempt, status,"
                    " response_status, error, duration_ms, created_at, next_attempt_at)"
                    " VALUES (:seq, 1, 3, :status, :response, NULL, 12, :at, NULL)",
                    seq=1 if status == "failed" else 2,
                    status=status,
                    response=response,
                )
            read = lambda: {  # noqa: E731
                table: connection.execute(text(f"SELECT {columns} FROM {table} ORDER BY 1")).all()
                for table, columns in seen.items()
            }
            before = read()
            upgrade(connection)
            after = read()
            added = connection.execute(
                text(
                    "SELECT previous_secret, previous_secret_expires_at, failing_since"
                    " FROM event_subscriptions ORDER BY id"
                )
            ).all()
            run(
                "INSERT INTO events (id, type, txid, created_at, data)"
                " VALUES ('evt_3', 'subscription.disabled', 0, :at, '{}')"
            )
            try:
                with connection.begin_nested():
                    run(
                        "INSERT INTO events (id, type, txid, created_at, data)"
                        " VALUES ('evt_4', 'no.such.type', 0, :at, '{}')"
                    )
                unknown_refused = False
            except IntegrityError:
                unknown_refused = True
            run("DELETE FROM event_subscriptions WHERE id = 1")
            left = connection.scalar(text("SELECT count(*) FROM event_deliveries"))
        engine.dispose()

    assert after == before and len(after["event_deliveries"]) == 2
    assert [tuple(row) for row in added] == [(None, None, None), (None, None, None)]
    assert unknown_refused
    assert left == 0  # deliveries still go with their subscription


def test_the_sort_indexes_arrive_on_a_catalog_in_use_and_every_list_reads_as_before(
    db_kind: str, tmp_path: Path
):
    """Migration 0016 on a database at 0015 with live and archived products and orders (made by
    the service's own rules): every row is kept as it was, each sort's index exists (products'
    over live ones only, `available` on its expression), the lists sort and page by cursor on
    them, and it downgrades back to 0015 and up again."""
    import orjson
    from sqlalchemy import text

    from app import orders, products
    from app.db.connect import create_database
    from app.schemas import OrderCreate, ProductCreate
    from tests.support.factories import Db

    rows_sql = ("SELECT * FROM products ORDER BY id", "SELECT * FROM orders ORDER BY id")
    with database_url(db_kind, tmp_path) as url:
        settings = Settings(_env_file=None, database_url=url)
        engine = create_db_engine(settings)
        with engine.begin() as connection:
            upgrade(connection, "0015")
        db = Db(create_database(settings))
        made = [
            db.write(
                products.create_product,
                ProductCreate.model_validate(
                    {"sku": f"P-{n}", "name": name, "price": price, "stock": stock}
                ),
            )
            for n, (name, price, stock) in enumerate(
                [("pear", "3.00", 5), ("apple", "1.00", 9), ("fig", "3.00", 7)]
            )
        ]
        for product, quantity in ((made[0], 1), (made[1], 2), (made[0], 3)):
            request = {"product_id": product["id"], "quantity": quantity}
            db.write(orders.place_order, OrderCreate.model_validate(request))
        db.write(products.archive_product, made[2]["id"])
        db.close()
        with engine.begin() as connection:
            before = [connection.execute(text(sql)).all() for sql in rows_sql]
            upgrade(connection)
            after = [connection.execute(text(sql)).all() for sql in rows_sql]
            indexes = {
                table: {index["name"] for index in inspect(connection).get_indexes(table)}
                for table in ("products", "orders")
            }
        db = Db(create_database(settings))
        by_price_sort = products.SORTING["-price"]
        by_price = db.read(products.list_products, limit=1, sort=by_price_sort)
        cheaper = db.read(
            products.list_products, limit=5, after=by_price["next"], sort=by_price_sort
        )
        fewest = db.read(products.list_products, limit=5, sort=products.SORTING["available"])
        by_total = db.read(orders.list_orders, limit=5, sort=orders.SORTING["-total"])["items"]
        db.close()
        with engine.begin() as connection:
            config = upgrade(connection)
            command.downgrade(config, "0015")
            back = {index["name"] for index in inspect(connection).get_indexes("orders")}
            upgrade(connection)
        engine.dispose()

    assert after == before
    sorted_indexes = {"name", "price", "updated_at"} | (
        {"available"} if db_kind == "postgresql" else set()  # SQLite reflects no expression
    )
    assert {f"ix_products_live_{key}_id" for key in sorted_indexes} <= indexes["products"]
    assert {
        "ix_orders_created_at_id",
        "ix_orders_status_created_at_id",
        "ix_orders_total_cents_id",
        "ix_orders_updated_at_id",
    } <= indexes["orders"]
    assert not {"ix_orders_created_at", "ix_orders_status_id"} & indexes["orders"]
    assert {"ix_orders_created_at", "ix_orders_status_id"} <= back
    pear, apple = made[0]["id"], made[1]["id"]
    listed = orjson.loads(orjson.dumps(by_price["items"] + cheaper["items"]))
    assert [p["id"] for p in listed] == [pear, apple]
    # available: pear 5 - 4 = 1, apple 9 - 2 = 7
    assert [p["id"] for p in orjson.loads(orjson.dumps(fewest["items"]))] == [pear, apple]
    assert [o["total"] for o in by_total] == ["9.00", "3.00", "2.00"]


def test_a_shop_at_0011_upgrades_to_order_money_with_each_payment_shown(
    db_kind: str, tmp_path: Path
):
    """Migration 0012 on orders placed before it: each one's subtotal is its total, with no
    charges, links or metadata; an order a payment.succeeded event paid shows that payment
    (status paid, its payment id and amount), every other order is unpaid."""
    from sqlalchemy import text

    from app import orders
    from app.db.connect import create_database
    from tests.support.factories import Db

    at = "2026-12-01 10:00:00"
    money = (
        "SELECT id, subtotal_cents, total_cents, charges, external_id, customer_email, "
        "customer_name, metadata_json, payment_status, payment_id, amount_paid_cents, "
        "amount_refunded_cents FROM orders ORDER BY id"
    )
    with database_url(db_kind, tmp_path) as url:
        engine = create_db_engine(Settings(_env_file=None, database_url=url))
        with engine.begin() as connection:
            upgrade(connection, "0011")
            run = lambda sql, **p: connection.execute(text(sql), {"at": at, **p})  # noqa: E731
            run(
                "INSERT INTO products (id, sku, name, price_cents, on_hand, committed, "
                "created_at, updated_at) VALUES (1, 'MUG-1', 'Mug', 1250, 20, 0, :at, :at)"
            )
            for n, status, quantity in ((1, "PAID", 2), (2, "PENDING", 1), (3, "CANCELED", 3)):
                run(
                    "INSERT INTO orders (id, status, total_cents, created_at, updated_at)"
                    " VALUES (:id, :status, :total, :at, :at)",
                    id=n,
                    status=status,
                    total=1250 * quantity,
                )
                run(
                    "INSERT INTO order_lines (order_id, product_id, sku, name, quantity,"
                    " unit_price_cents, line_total_cents) VALUES (:id, 1, 'MUG-1', 'Mug', :q,"
                    " 1250, :total)",
                    id=n,
                    q=quantity,
                    total=1250 * quantity,
                )
            for event_id, order_id, type_, payment_id in (
                ("evt_paid", 1, "payment.succeeded", "pay_1"),
                ("evt_failed", 3, "payment.failed", "pay_3"),
            ):
                run(
                    "INSERT INTO payment_events (event_id, order_id, type, payment_id, "
                    "amount_cents, raw_body, signed_at, processed_at) VALUES (:event_id, "
                    ":order_id, :type, :payment_id, :amount, '{}', :at, :at)",
                    event_id=event_id,
                    order_id=order_id,
                    type=type_,
                    payment_id=payment_id,
                    amount=1250 * (2 if order_id == 1 else 3),
                )
            upgrade(connection, "0012")
            rows = [tuple(row) for row in connection.execute(text(money)).all()]
            upgrade(connection)
        engine.dispose()
        db = Db(create_database(Settings(_env_file=None, database_url=url)))
        shown = [db.read(orders.order_view, n) for n in (1, 2, 3)]
        db.close()

    unpaid = ("unpaid", None, 0, 0)
    assert rows == [
        (1, 2500, 2500, "[]", None, None, None, "{}", "paid", "pay_1", 2500, 0),
        (2, 1250, 1250, "[]", None, None, None, "{}", *unpaid),
        (3, 3750, 3750, "[]", None, None, None, "{}", *unpaid),
    ]
    fields = ("subtotal", "charges", "total", "external_id", "customer", "metadata")
    assert [tuple(order[f] for f in fields) for order in shown] == [
        ("25.00", [], "25.00", None, None, {}),
        ("12.50", [], "12.50", None, None, {}),
        ("37.50", [], "37.50", None, None, {}),
    ]
    payment = (
        "payment_status",
        "payment_id",
        "amount_paid",
        "amount_refunded",
        "amount_refundable",
    )
    assert [tuple(order[f] for f in payment) for order in shown] == [
        ("paid", "pay_1", "25.00", "0.00", "25.00"),
        ("unpaid", None, "0.00", "0.00", "0.00"),
        ("unpaid", None, "0.00", "0.00", "0.00"),
    ]


def test_the_stock_events_revision_keeps_events_and_allows_the_stock_events(
    db_kind: str, tmp_path: Path
):
    """Migration 0017 on a shop at 0016: every event is kept as it was, and the outbox takes
    stock.low, stock.out and stock.replenished besides every type it took before."""
    from sqlalchemy import text

    at = "2026-12-01 10:00:00"
    insert = text(
        "INSERT INTO events (id, type, txid, created_at, data) VALUES (:id, :type, 0, :at, '{}')"
    )
    with database_url(db_kind, tmp_path) as url:
        engine = create_db_engine(Settings(_env_file=None, database_url=url))
        with engine.begin() as connection:
            upgrade(connection, "0016")
            connection.execute(insert, {"id": "evt_1", "type": "product.created", "at": at})
            connection.execute(insert, {"id": "evt_2", "type": "stock.adjusted", "at": at})
            listed = "SELECT seq, id, type, data FROM events ORDER BY seq"
            before = connection.execute(text(listed)).all()
            upgrade(connection)
            after = connection.execute(text(listed)).all()
            for n, type_ in enumerate(("stock.low", "stock.out", "stock.replenished")):
                connection.execute(insert, {"id": f"evt_s{n}", "type": type_, "at": at})
            connection.execute(insert, {"id": "evt_o", "type": "order.created", "at": at})
            refused = connection.begin_nested()
            try:
                connection.execute(insert, {"id": "evt_x", "type": "stock.lost", "at": at})
                unknown_type_refused = False
            except Exception:
                unknown_type_refused = True
            refused.rollback()
        engine.dispose()

    assert after == before and len(after) == 2
    assert unknown_type_refused
