"""What the benchmark runs against: fresh databases seeded in bulk, and uvicorn servers."""

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import psutil
from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

from app.core.config import Settings
from app.db.connect import create_db_engine
from app.tables import Product
from tests.support.live_server import UVICORN_FLAGS, LiveServer, migrate

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1/test")
LARGE_STOCK = 1_000_000_000
# The service runs with API keys on, as a deployment does; wrk sends this one with every
# request (bench/wrk/report.lua), to the bare app too, which ignores it.
API_KEY = "bench-key-4f9c2a7e1d8b6035"
__all__ = [
    "API_KEY",
    "UVICORN_FLAGS",
    "fresh_database",
    "postgres_cpu_seconds",
    "seed_orders",
    "seed_products",
    "serve",
]


@contextmanager
def fresh_database(kind: str, revision: str = "head") -> Iterator[str]:
    """A migrated, empty database: an SQLite file in a temporary folder, or a PostgreSQL
    schema of its own (dropped afterwards). `revision`: an earlier schema, for the tree of an
    earlier version of the service (bench/run.py --before)."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bench-") as folder:
            url = f"sqlite:///{folder}/orders.db"
            _migrate(url, revision)
            yield url
        return
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", hide_parameters=True)
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        _migrate(url.render_as_string(hide_password=False), revision)
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _migrate(url: str, revision: str = "head") -> None:
    if revision == "head":
        migrate(url)
        return
    from alembic import command
    from alembic.config import Config

    engine = _engine(url)
    with engine.begin() as connection:
        config = Config(toml_file=str(ROOT / "pyproject.toml"))
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    engine.dispose()


def _engine(url: str):  # type: ignore[no-untyped-def]
    return create_db_engine(Settings(_env_file=None, database_url=url))


def seed_products(url: str, count: int) -> None:
    """`count` products, ids 1..count, with more stock than any run can sell."""
    now = datetime.now(UTC)
    rows = [
        {
            "id": n,
            "sku": f"BENCH-{n}",
            "name": f"Bench product {n}",
            "price_cents": 1250,
            "on_hand": LARGE_STOCK,
            "created_at": now,
            "updated_at": now,
        }
        for n in range(1, count + 1)
    ]
    engine = _engine(url)
    with engine.begin() as connection:
        connection.execute(insert(Product), rows)
        if not url.startswith("sqlite"):
            _follow_ids(connection, "products")
            # A live table has statistics (autovacuum's ANALYZE): without them the planner
            # sorts every product for a page of 20 (1.6 ms instead of 0.16).
            connection.execute(text("ANALYZE products"))
    engine.dispose()


ORDER_STATUS_SQL = (
    "CASE i % 4 WHEN 0 THEN 'PENDING' WHEN 1 THEN 'PAID' WHEN 2 THEN 'SHIPPED' ELSE 'CANCELED' END"
)


def seed_orders(url: str, count: int, products: int) -> None:
    """`count` one-line orders straight in SQL (a quarter in each status), for scale tests.

    They do not move stock: these figures are about reading orders, not the invariant."""
    numbers = (
        "(WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq "
        "WHERE i < :n) SELECT i FROM seq) AS numbers"
        if url.startswith("sqlite")
        else "generate_series(1, :n) AS numbers(i)"
    )
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    engine = _engine(url)
    with engine.begin() as connection:
        connection.execute(
            text(
                f"INSERT INTO orders (id, status, total_cents, created_at, updated_at) "
                f"SELECT i, {ORDER_STATUS_SQL}, 1250, '{stamp}', '{stamp}' FROM {numbers}"
            ),
            {"n": count},
        )
        connection.execute(
            text(
                f"INSERT INTO order_lines (id, order_id, product_id, sku, name, quantity, "
                f"unit_price_cents, line_total_cents) "
                f"SELECT i, i, i % {products} + 1, 'BENCH-' || (i % {products} + 1), "
                f"'Bench product', 1, 1250, 1250 FROM {numbers}"
            ),
            {"n": count},
        )
        if not url.startswith("sqlite"):
            _follow_ids(connection, "orders", "order_lines")
            connection.execute(text("ANALYZE"))
    engine.dispose()


def _follow_ids(connection, *tables: str) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL: rows seeded with their ids leave each id sequence behind; move it past them,
    or the first row the service inserts takes id 1 again (a 500 on POST /products)."""
    for table in tables:
        connection.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        )


def postgres_cpu_seconds() -> float:
    """User and system CPU of every process of the local PostgreSQL server so far (the
    benchmark's server runs on this machine, sharing its cores with the service)."""
    total = 0.0
    for process in psutil.process_iter(["name", "cpu_times"]):
        if (process.info["name"] or "").startswith("postgres") and process.info["cpu_times"]:
            total += sum(process.info["cpu_times"][:2])
    return total


class Served(NamedTuple):
    url: str
    process: psutil.Process

    def cpu_seconds(self) -> float:
        """CPU time of the server and its worker processes so far: a figure that, unlike
        requests/s, does not shrink when other programs take the machine's cores."""
        processes = [self.process, *self.process.children(recursive=True)]
        return sum(sum(p.cpu_times()[:2]) for p in processes)


@contextmanager
def serve(
    app: str,
    workers: int,
    database_url: str | None = None,
    ready_path: str = "/readyz",
    tree: Path = ROOT,
) -> Iterator[Served]:
    """uvicorn serving `app` as ./run.sh would (tests/support/live_server.py), stopped on exit;
    `tree`: the service's source tree (another for an earlier version)."""
    keys = {"API_KEYS": API_KEY, "DATABASE_URL": database_url or ""}
    with tempfile.NamedTemporaryFile(prefix="bench-server-", suffix=".log") as log:
        server = LiveServer(
            database_url,
            workers=workers,
            env=keys,
            log_path=Path(log.name),
            app=app,
            ready_path=ready_path,
            migrate=False,
            cwd=tree,
        )
        with server:
            assert server.process is not None
            yield Served(server.base_url, psutil.Process(server.process.pid))
