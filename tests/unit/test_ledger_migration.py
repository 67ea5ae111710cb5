"""Upgrading a database filled at the previous head to the ledger: from its first minute, every
product's stock is the sum of its movements, and every canceled order has its reason."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, bindparam, create_engine, event, text
from sqlalchemy.exc import IntegrityError
from sqlmodel.sql.sqltypes import UTCDateTime

from app.tables import ORDER_REASONS, REFUND_REASONS, SHIPMENT_REASONS, MovementReason
from tests.support.databases import database_url
from tests.support.live_server import ROOT

CONFIG = Config(toml_file=str(ROOT / "pyproject.toml"))
LEDGER = "0005"
ONE_QUANTITY = "0010"  # the last revision where a product had one quantity, `stock`
PREVIOUS = ScriptDirectory.from_config(CONFIG).get_revision(LEDGER).down_revision


def _engine(url: str) -> Engine:
    engine = create_engine(url, hide_parameters=True)
    if url.startswith("sqlite"):

        @event.listens_for(engine, "connect")
        def foreign_keys_on(dbapi_connection, _record) -> None:  # as the service runs SQLite
            dbapi_connection.execute("PRAGMA foreign_keys=ON")

    return engine


def _migrate(connection: Connection, revision: str, *, down: bool = False) -> None:
    CONFIG.attributes["connection"] = connection
    (command.downgrade if down else command.upgrade)(CONFIG, revision)


def _insert(connection: Connection, sql: str, **params: object) -> int:
    """Insert one row and return its id; datetimes bound as the service stores them."""
    typed = [
        bindparam(k, type_=UTCDateTime()) for k, v in params.items() if isinstance(v, datetime)
    ]
    statement = text(sql + " RETURNING id").bindparams(*typed)
    return connection.execute(statement, params).scalar_one()


def _fill_previous_head(connection: Connection) -> dict[str, int]:
    """Products (one archived, one sold out), orders in every status, a failed payment."""
    now = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    product = (
        "INSERT INTO products (sku, name, price_cents, stock, created_at, updated_at, "
        "archived_at) VALUES (:sku, 'Mug', 1250, :stock, :now, :now, :archived)"
    )
    ids = {
        "mug": _insert(connection, product, sku="MUG", stock=40, now=now, archived=None),
        "empty": _insert(connection, product, sku="EMPTY", stock=0, now=now, archived=None),
        "old": _insert(connection, product, sku="OLD", stock=7, now=now, archived=now),
    }
    order = (
        "INSERT INTO orders (status, total_cents, created_at, updated_at) "
        "VALUES (:status, 1250, :now, :now)"
    )
    for status in ("PENDING", "PAID", "SHIPPED", "CANCELED", "CANCELED"):
        order_id = _insert(connection, order, status=status, now=now)
        ids[status.lower()] = order_id
        connection.execute(
            text(
                "INSERT INTO order_lines (order_id, product_id, sku, name, quantity, "
                "unit_price_cents, line_total_cents) VALUES (:o, :p, 'MUG', 'Mug', 1, 1250, 1250)"
            ),
            {"o": order_id, "p": ids["mug"]},
        )
    ids["requested"] = ids["canceled"] - 1
    _insert(
        connection,
        "INSERT INTO payment_events (event_id, order_id, type, payment_id, amount_cents, "
        "raw_body, signed_at, processed_at) VALUES ('evt_1', :o, 'payment.failed', 'pay_1', "
        "1250, '{}', :now, :now)",
        o=ids["canceled"],
        now=now,
    )
    return ids


def _ledger(connection: Connection) -> dict[int, tuple[int, int, int, int | None]]:
    """Per product: stock, sum of deltas, movements, newest stock_after."""
    rows = connection.execute(
        text(
            "SELECT p.id, p.stock, COALESCE(SUM(m.delta), 0), COUNT(m.id), "
            "(SELECT n.stock_after FROM stock_movements n WHERE n.product_id = p.id "
            "ORDER BY n.id DESC LIMIT 1) FROM products p "
            "LEFT JOIN stock_movements m ON m.product_id = p.id GROUP BY p.id, p.stock"
        )
    )
    return {row[0]: tuple(row[1:]) for row in rows}


@pytest.fixture
def upgraded(db_kind: str, tmp_path: Path):
    with database_url(db_kind, tmp_path) as url:
        engine = _engine(url)
        with engine.begin() as connection:
            _migrate(connection, PREVIOUS)
            ids = _fill_previous_head(connection)
            # Up to the last revision with one quantity (0011 gives products two, and has a
            # test of its own in test_migrations.py).
            _migrate(connection, ONE_QUANTITY)
        with engine.begin() as connection:
            yield connection, ids
        engine.dispose()


def test_upgrade_gives_each_product_one_initial_movement_holding_its_stock(upgraded):
    connection, ids = upgraded

    assert _ledger(connection) == {
        ids["mug"]: (40, 40, 1, 40),
        ids["empty"]: (0, 0, 0, None),  # nothing to hold: no movement (delta is never 0)
        ids["old"]: (7, 7, 1, 7),  # archived, but its stock is still accounted for
    }
    reasons = connection.execute(text("SELECT DISTINCT reason FROM stock_movements")).scalars()
    assert set(reasons) == {"initial"}


def test_upgrade_gives_canceled_orders_the_reason_they_can_only_have_had(upgraded):
    connection, ids = upgraded

    rows = {r[0]: r[1] for r in connection.execute(text("SELECT id, cancel_reason FROM orders"))}

    assert rows[ids["canceled"]] == "payment_failed"
    assert rows[ids["requested"]] == "requested"
    assert rows[ids["pending"]] is rows[ids["paid"]] is rows[ids["shipped"]] is None
    expires = connection.execute(text("SELECT COUNT(*) FROM orders WHERE expires_at IS NOT NULL"))
    assert expires.scalar_one() == 0  # no window was promised to orders placed before


def test_migrated_constraints_take_exactly_the_reasons_the_code_defines(upgraded):
    connection, ids = upgraded
    _migrate(connection, "head")
    now = datetime.now(UTC)
    shipment = _insert(
        connection,
        "INSERT INTO shipments (order_id, actor, created_at) VALUES (:o, 'test', :now)",
        o=ids["paid"],
        now=now,
    )
    refund = _insert(
        connection,
        "INSERT INTO refunds (order_id, amount_cents, source, actor, created_at) "
        "VALUES (:o, 100, 'api', 'test', :now)",
        o=ids["paid"],
        now=now,
    )
    movement = (
        "INSERT INTO stock_movements (product_id, reason, on_hand_delta, committed_delta, "
        "on_hand_after, committed_after, order_id, shipment_id, refund_id, created_at) "
        "VALUES (:p, :reason, 1, 0, 1, 0, :o, :s, :r, :now)"
    )
    for reason in MovementReason:
        links = {
            "o": ids["pending"] if reason in ORDER_REASONS else None,
            "s": shipment if reason in SHIPMENT_REASONS else None,
            "r": refund if reason in REFUND_REASONS else None,
        }
        _insert(connection, movement, p=ids["empty"], reason=reason.value, now=now, **links)
    refused = (
        ("restocked", None, None, None),  # no such reason
        ("order_placed", None, None, None),  # an order's movement without its order
        ("received", 1, None, None),  # an order on a movement of no order
        ("shipped", ids["paid"], None, None),  # a shipment's movement without its shipment
        ("order_returned", ids["paid"], None, None),  # a refund's without its refund
    )
    for reason, order_id, shipment_id, refund_id in refused:
        with pytest.raises(IntegrityError), connection.begin_nested():
            _insert(
                connection,
                movement,
                p=ids["empty"],
                reason=reason,
                o=order_id,
                s=shipment_id,
                r=refund_id,
                now=now,
            )


def test_downgrade_below_the_ledger_and_up_again_keeps_the_invariant(upgraded):
    connection, ids = upgraded

    _migrate(connection, PREVIOUS, down=True)
    _migrate(connection, ONE_QUANTITY)

    assert _ledger(connection)[ids["mug"]] == (40, 40, 1, 40)
