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
                request=request.model_dump(mode="json"),
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
            upgrade(connection)
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
            "delta": 5,
            "reason": "initial",
            "order_id": None,
            "reference": None,
            "note": None,
            "stock_after": 5,
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


def test_a_shop_at_the_previous_head_upgrades_with_nothing_a_client_saw_changed(
    db_kind: str, tmp_path: Path
):
    """A database at 0007 with orders in every state, their lines, movements, events and a
    subscription, upgraded to head: every row keeps every value it had, and the service reads
    each order and product as before."""
    from sqlalchemy import text

    from app import orders, products
    from app.db.connect import create_database
    from tests.support.factories import Db

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
            upgrade(connection)
            after = {
                table: connection.execute(text(f"SELECT {columns} FROM {table} ORDER BY 1")).all()
                for table, columns in _SEEN_AT_0007.items()
            }
        engine.dispose()
        db = Db(create_database(Settings(_env_file=None, database_url=url)))
        product = db.read(products.get_product, 1)
        listed = db.read(orders.list_orders, limit=10)["items"]
        db.close()

    assert after == before
    assert product["stock"] == 20 and product["price"] == "12.50"
    assert sorted((o["id"], o["status"], o["total"]) for o in listed) == [
        (n, status, "25.00") for n, status in enumerate(statuses, start=1)
    ]
    assert all(o["items"][0]["quantity"] == 2 for o in listed)


def test_the_sort_indexes_arrive_on_a_catalog_in_use_and_every_list_reads_as_before(
    db_kind: str, tmp_path: Path
):
    """Migration 0013 on a database at 0010 with live and archived products and orders: the
    rows are kept as they were, each sort's index exists (products' over live ones only), the
    lists sort and page by cursor on them, and it downgrades back to 0010 and up again."""
    import orjson
    from sqlalchemy import text

    from app import orders, products
    from app.db.connect import create_database
    from tests.support.factories import Db

    products_sql = "SELECT * FROM products ORDER BY id"
    orders_sql = "SELECT * FROM orders ORDER BY id"
    with database_url(db_kind, tmp_path) as url:
        engine = create_db_engine(Settings(_env_file=None, database_url=url))
        with engine.begin() as connection:
            upgrade(connection, "0010")
            for n, (name, price, archived) in enumerate(
                [("pear", 300, None), ("apple", 100, None), ("fig", 300, "2026-12-02 00:00:00")],
                start=1,
            ):
                connection.execute(
                    text(
                        "INSERT INTO products (id, sku, name, price_cents, stock, created_at,"
                        " updated_at, archived_at) VALUES (:id, :sku, :name, :price, :n, :at,"
                        " :at, :archived)"
                    ),
                    {
                        "id": n,
                        "sku": f"P-{n}",
                        "name": name,
                        "price": price,
                        "n": n,
                        "at": f"2026-12-01 10:00:0{n}",
                        "archived": archived,
                    },
                )
                connection.execute(
                    text(
                        "INSERT INTO orders (id, status, total_cents, created_at, updated_at)"
                        " VALUES (:id, 'PENDING', :total, :at, :at)"
                    ),
                    {"id": n, "total": price, "at": f"2026-12-01 10:00:0{4 - n}"},
                )
                connection.execute(
                    text(
                        "INSERT INTO order_lines (order_id, product_id, sku, name, quantity,"
                        " unit_price_cents, line_total_cents) VALUES (:id, :id, :sku, :name, 1,"
                        " :total, :total)"
                    ),
                    {"id": n, "sku": f"P-{n}", "name": name, "total": price},
                )
            before = [connection.execute(text(sql)).all() for sql in (products_sql, orders_sql)]
            upgrade(connection)
            after = [connection.execute(text(sql)).all() for sql in (products_sql, orders_sql)]
            indexes = {
                table: {index["name"] for index in inspect(connection).get_indexes(table)}
                for table in ("products", "orders")
            }
        engine.dispose()
        db = Db(create_database(Settings(_env_file=None, database_url=url)))
        by_price_sort = products.SORTING["-price"]
        by_price = db.read(products.list_products, limit=1, sort=by_price_sort)
        cheaper = db.read(
            products.list_products, limit=5, after=by_price["next"], sort=by_price_sort
        )
        newest = db.read(orders.list_orders, limit=5)["items"]
        by_total = db.read(orders.list_orders, limit=5, sort=orders.SORTING["total"])["items"]
        db.close()
        engine = create_db_engine(Settings(_env_file=None, database_url=url))
        with engine.begin() as connection:
            config = upgrade(connection)
            command.downgrade(config, "0010")
            back = {index["name"] for index in inspect(connection).get_indexes("orders")}
            upgrade(connection)
        engine.dispose()

    assert after == before
    assert {
        "ix_products_live_name_id",
        "ix_products_live_price_id",
        "ix_products_live_available_id",
        "ix_products_live_updated_at_id",
    } <= indexes["products"]
    assert {
        "ix_orders_created_at_id",
        "ix_orders_status_created_at_id",
        "ix_orders_total_cents_id",
        "ix_orders_updated_at_id",
    } <= indexes["orders"]
    assert not {"ix_orders_created_at", "ix_orders_status_id"} & indexes["orders"]
    assert {"ix_orders_created_at", "ix_orders_status_id"} <= back
    listed = orjson.loads(orjson.dumps(by_price["items"] + cheaper["items"]))
    assert [p["id"] for p in listed] == [1, 2]
    assert [o["id"] for o in newest] == [1, 2, 3]
    assert [o["id"] for o in by_total] == [2, 1, 3]
