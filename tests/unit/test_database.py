"""The seam itself (app/db/base.py and its drivers), on both engines: statements, commit and
rollback, unique violations, the client-gone rule, time budgets, storage errors and what
reaches the log."""

import asyncio
import contextlib
import logging
import sqlite3
import time

import asyncpg
import pytest

from app.core.errors import ApiError
from app.db import postgresql as pg_driver
from app.db import sqlite as sqlite_driver
from app.db.base import (
    ClientGone,
    Connection,
    DatabaseError,
    Sql,
    UniqueViolation,
    client_gone,
)
from app.db.connect import create_database
from tests.support.factories import Db, make_product, product_row, stock_of

_SET_NAME = Sql("UPDATE products SET name = :name WHERE id = :id")
_INSERT_SKU = Sql(
    "INSERT INTO products (sku, name, price_cents, on_hand, created_at, updated_at) "
    "VALUES (:sku, 'x', 100, 1, :now, :now)"
)


def test_sql_is_compiled_to_numbered_placeholders_for_asyncpg_once():
    sql = Sql("SELECT :a::int + :b, ':not' FROM t WHERE x = :a AND y = 'a::text'")
    text, names = sql.compiled("postgresql")
    assert text == "SELECT $1::int + $2, ':not' FROM t WHERE x = $1 AND y = 'a::text'"
    assert names == ("a", "b")
    assert sql.compiled("postgresql") is sql.compiled("postgresql")
    assert sql.compiled("sqlite")[0] == sql.text("sqlite")


def test_a_statement_for_each_engine_needs_both_texts():
    with pytest.raises(ValueError):
        Sql(sqlite="SELECT 1")
    both = Sql(sqlite="SELECT 1", postgresql="SELECT 2")
    assert (both.text("sqlite"), both.text("postgresql")) == ("SELECT 1", "SELECT 2")


def test_a_statement_of_one_engine_refuses_the_other():
    only = Sql.only("postgresql", "SELECT 1 FOR UPDATE")
    assert only.text("postgresql") == "SELECT 1 FOR UPDATE"
    with pytest.raises(ValueError, match="not written for sqlite"):
        only.text("sqlite")
    with pytest.raises(ValueError):
        Sql.only("oracle", "SELECT 1")


def test_write_commits_and_timestamps_are_aware_utc(db: Db):
    mug = make_product(db, name="Mug")
    row = product_row(db, mug.id)
    assert row.created_at.utcoffset().total_seconds() == 0
    assert db.value("SELECT count(*) FROM products") == 1


def test_write_rolls_back_on_any_exception_and_reraises(db: Db):
    mug = make_product(db, name="Mug")

    async def rename_then_fail(conn: Connection) -> None:
        assert await conn.execute(_SET_NAME, {"name": "Renamed", "id": mug.id}) == 1
        raise ApiError.unlisted(409, code="some_conflict")

    with pytest.raises(ApiError):
        db.write(rename_then_fail)
    assert product_row(db, mug.id).name == "Mug"


def test_a_unique_constraint_is_a_unique_violation_on_both_engines(db: Db):
    from app.core.formats import utcnow

    async def insert_twice(conn: Connection) -> None:
        await conn.execute(_INSERT_SKU, {"sku": "TWICE", "now": utcnow()})
        await conn.execute(_INSERT_SKU, {"sku": "TWICE", "now": utcnow()})

    with pytest.raises(UniqueViolation):
        db.write(insert_twice)
    assert db.value("SELECT count(*) FROM products") == 0


def test_no_commit_for_a_client_that_is_gone(db: Db):
    mug = make_product(db, name="Mug")

    async def rename(conn: Connection) -> None:
        await conn.execute(_SET_NAME, {"name": "For nobody", "id": mug.id})

    async def as_a_request_whose_client_left() -> None:
        client_gone.set(lambda: True)
        await db.database.write(rename)

    with pytest.raises(ClientGone) as raised:
        db.run(as_a_request_whose_client_left())
    assert (raised.value.status, raised.value.code) == (499, "client_closed_request")
    assert product_row(db, mug.id).name == "Mug"

    async def as_a_request_whose_client_waits() -> None:
        client_gone.set(lambda: False)
        await db.database.write(rename)

    db.run(as_a_request_whose_client_waits())
    assert product_row(db, mug.id).name == "For nobody"


_SLOW = Sql(
    sqlite="WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n",
    postgresql="SELECT pg_sleep(5)",
)


def test_a_statement_past_its_time_budget_is_cut_off_with_a_503(db: Db, monkeypatch, settings):
    monkeypatch.setattr(sqlite_driver, "LOOP_STATEMENT_BUDGET_SECONDS", 0.2)
    monkeypatch.setattr(pg_driver, "STATEMENT_TIMEOUT_MS", 200)
    database = Db(create_database(settings))

    async def slow(conn: Connection) -> None:
        await conn.fetch_value(_SLOW)

    started = time.monotonic()
    with pytest.raises(ApiError) as raised:
        database.read(slow)
    database.close()
    assert (raised.value.status, raised.value.code) == (503, "database_unavailable")
    assert time.monotonic() - started < 4


def test_closing_while_a_unit_is_being_cancelled_returns_its_connection_at_once(
    db: Db, monkeypatch, settings
):
    """A shutdown cancels the chores and closes the database in the same breath: the cancelled
    unit must still hand its connection back to the pool being closed, or closing waits out the
    pool's 10 s and then cuts every connection off."""
    monkeypatch.setattr(sqlite_driver, "LOOP_STATEMENT_BUDGET_SECONDS", 0.2)
    database = create_database(settings)

    async def slow(conn: Connection) -> None:
        await conn.fetch_value(_SLOW)

    async def shutdown_mid_statement() -> float:
        unit = asyncio.create_task(database.read(slow))
        await asyncio.sleep(0.3)
        unit.cancel()
        started = time.monotonic()
        await database.close()
        with contextlib.suppress(asyncio.CancelledError, ApiError):
            await unit
        return time.monotonic() - started

    assert db.run(shutdown_mid_statement()) < 5


def test_a_unit_that_awaits_anything_else_inside_a_sqlite_transaction_is_refused(db: Db):
    mug = make_product(db, name="Mug")

    async def rename_and_wait(conn: Connection) -> None:
        await conn.execute(_SET_NAME, {"name": "Renamed", "id": mug.id})
        await asyncio.sleep(0.01)

    if db.dialect == "postgresql":
        db.write(rename_and_wait)  # an async driver may wait: the loop goes on meanwhile
        assert product_row(db, mug.id).name == "Renamed"
        return
    with pytest.raises(RuntimeError, match="awaited something other than the database"):
        db.write(rename_and_wait)
    assert product_row(db, mug.id).name == "Mug"


@pytest.fixture
def sqlite_db(tmp_path):
    """A SQLite file database with the schema (for what only SQLite has: its writer lock, its
    WAL); PostgreSQL's row locks are in tests/live/test_event_loop.py."""
    from sqlmodel import SQLModel

    from app.core.config import Settings
    from app.db.connect import create_db_engine

    settings = Settings(_env_file=None, database_url=f"sqlite:///{tmp_path / 'only.db'}")
    engine = create_db_engine(settings)
    SQLModel.metadata.create_all(engine)
    engine.dispose()
    db = Db(create_database(settings))
    yield db
    db.close()


def test_sqlite_writer_waits_for_another_connections_lock_without_blocking_the_loop(
    sqlite_db: Db,
):
    db = sqlite_db
    mug = make_product(db, name="Mug")
    path = db.database.path  # type: ignore[attr-defined]
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another worker holds SQLite's write lock

    async def rename(conn: Connection) -> None:
        await conn.execute(_SET_NAME, {"name": "After the wait", "id": mug.id})

    async def scenario() -> int:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        ticker = asyncio.ensure_future(tick())
        writing = asyncio.ensure_future(db.database.write(rename))
        await asyncio.sleep(0.3)
        assert not writing.done(), "the write did not wait for the lock"
        other.execute("ROLLBACK")
        await writing
        ticker.cancel()
        return ticks

    ticks = db.run(scenario())
    other.close()
    assert ticks > 20, "the event loop stalled while the writer waited"
    assert product_row(db, mug.id).name == "After the wait"


def _statements_sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every BEGIN, SAVEPOINT, RELEASE and COMMIT the SQLite driver sends, in order."""
    sent: list[str] = []
    real = sqlite_driver._execute

    def spy(raw: sqlite3.Connection, statement: str) -> None:
        sent.append(statement)
        real(raw, statement)

    monkeypatch.setattr(sqlite_driver, "_execute", spy)
    return sent


def test_queued_writes_commit_together_and_a_failing_one_rolls_back_alone(
    sqlite_db: Db, monkeypatch
):
    from app.core.formats import utcnow

    db = sqlite_db
    sent = _statements_sent(monkeypatch)

    async def insert(conn: Connection, sku: str, fail: bool) -> str:
        await conn.execute(_INSERT_SKU, {"sku": sku, "now": utcnow()})
        if fail:
            raise ApiError.unlisted(409, code="some_conflict")
        return sku

    async def three_requests_at_once() -> list[object]:
        return await asyncio.gather(
            *(db.database.write(insert, sku, sku == "B") for sku in ("A", "B", "C")),
            return_exceptions=True,
        )

    a, b, c = db.run(three_requests_at_once())
    assert (a, c) == ("A", "C")
    assert isinstance(b, ApiError) and b.code == "some_conflict"
    assert [r["sku"] for r in db.rows("SELECT sku FROM products ORDER BY sku")] == ["A", "C"]
    # One transaction for the three, one savepoint each.
    assert sent.count("BEGIN IMMEDIATE") == 1 and sent.count("COMMIT") == 1
    assert sent.count("SAVEPOINT unit") == 3


def test_in_a_shared_turn_each_unit_runs_in_its_own_requests_context(sqlite_db: Db):
    """The client-gone rule (and the request id in the log) is each request's own, not that of
    the request whose write happened to start the turn."""
    from app.core.formats import utcnow

    db = sqlite_db

    async def insert(conn: Connection, sku: str) -> str:
        await conn.execute(_INSERT_SKU, {"sku": sku, "now": utcnow()})
        return sku

    async def request(sku: str, client_left: bool) -> str:
        client_gone.set(lambda: client_left)
        return await db.database.write(insert, sku)

    async def three_requests_at_once() -> list[object]:
        return await asyncio.gather(
            request("A", False), request("B", True), request("C", False), return_exceptions=True
        )

    a, b, c = db.run(three_requests_at_once())
    assert (a, c) == ("A", "C") and isinstance(b, ClientGone)
    assert [r["sku"] for r in db.rows("SELECT sku FROM products ORDER BY sku")] == ["A", "C"]


def test_a_checkpoint_copies_in_a_thread_while_writes_and_reads_go_on_then_empties_the_wal(
    sqlite_db: Db, monkeypatch
):
    import os
    import threading

    db = sqlite_db
    mug = make_product(db, name="Mug")
    monkeypatch.setattr(sqlite_driver, "WAL_CHECKPOINT_BYTES", 1)
    monkeypatch.setattr(sqlite_driver, "_CHECK_WAL_EVERY", 1)
    real = sqlite_driver.SqliteDatabase._checkpoint
    seen: list[tuple[int, str]] = []

    def slow_checkpoint(self: sqlite_driver.SqliteDatabase, mode: str) -> None:
        seen.append((threading.get_ident(), mode))
        if mode == "PASSIVE":
            time.sleep(0.4)  # a slow disk's copying and sync
        real(self, mode)

    monkeypatch.setattr(sqlite_driver.SqliteDatabase, "_checkpoint", slow_checkpoint)
    wal = f"{db.database.path}-wal"  # type: ignore[attr-defined]

    async def rename(conn: Connection, name: str) -> None:
        await conn.execute(_SET_NAME, {"name": name, "id": mug.id})

    async def name(conn: Connection) -> str:
        return await conn.fetch_value(
            Sql("SELECT name FROM products WHERE id = :id"), {"id": mug.id}
        )

    async def scenario() -> tuple[int, float, list[str]]:
        await db.database.write(rename, "First")  # starts the copying
        started = time.monotonic()
        await db.database.write(rename, "Second")  # while the copying sleeps
        second_took = time.monotonic() - started
        reads = [await db.database.read(name) for _ in range(5)]
        copying = db.database._copying  # type: ignore[attr-defined]
        for _ in range(300):  # until the copying ends
            if copying.done():
                break
            await asyncio.sleep(0.01)
        await db.database.write(rename, "Third")  # its turn then finishes the checkpoint
        for _ in range(300):  # answered at its COMMIT: the checkpoint's end comes after
            if len(seen) == 2 and os.path.getsize(wal) == 0:
                break
            await asyncio.sleep(0.01)
        return threading.get_ident(), second_took, reads

    loop_thread, second_took, reads = db.run(scenario())
    assert [mode for _, mode in seen] == ["PASSIVE", "TRUNCATE"]
    assert all(thread != loop_thread for thread, _ in seen)
    assert second_took < 0.3, "a write waited for the checkpoint's copying"
    assert reads == ["Second"] * 5
    assert os.path.getsize(wal) == 0
    assert product_row(db, mug.id).name == "Third"


def test_sqlite_writer_gives_up_at_its_deadline_with_a_503(tmp_path):
    from app.core.config import Settings

    settings = Settings(_env_file=None)
    url = f"sqlite:///{tmp_path / 'locked.db'}"
    database = Db(
        create_database(
            settings.model_copy(update={"database_url": url, "sqlite_busy_timeout_ms": 300})
        )
    )
    database.execute("CREATE TABLE t (x INTEGER)")
    other = sqlite3.connect(str(tmp_path / "locked.db"), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")

    with pytest.raises(ApiError) as raised:
        database.execute("INSERT INTO t VALUES (1)")
    other.close()
    database.close()
    assert (raised.value.status, raised.value.code) == (503, "database_unavailable")


def test_the_wal_stays_small_with_automatic_checkpoints_off(sqlite_db: Db, monkeypatch):
    db = sqlite_db
    monkeypatch.setattr(sqlite_driver, "WAL_CHECKPOINT_BYTES", 64 * 1024)
    path = db.database.path  # type: ignore[attr-defined]
    mug = make_product(db, description="x" * 1900)
    assert db.value("PRAGMA wal_autocheckpoint") == 0

    for i in range(400):
        db.execute("UPDATE products SET description = :d WHERE id = :id", d=f"{i}" * 900, id=mug.id)

    import os

    assert os.path.getsize(f"{path}-wal") < 1024 * 1024


def test_a_full_disk_is_507_and_logged_once_with_its_cause(db: Db, caplog):
    if db.dialect == "postgresql":
        error = pg_driver.classify(asyncpg.exceptions.DiskFullError("could not extend file"))
        assert isinstance(error, ApiError) and (error.status, error.code) == (
            507,
            "insufficient_storage",
        )
        return
    path = db.database.path  # type: ignore[attr-defined]
    pages = db.value("PRAGMA page_count")
    raw, _ = db.database._loop_connection("_writer")  # type: ignore[attr-defined]
    raw.execute(f"PRAGMA max_page_count = {pages + 1}")
    caplog.set_level(logging.WARNING, "app.database")

    with pytest.raises(ApiError) as raised:
        for _ in range(20):
            make_product(db, description="d" * 2000)

    assert (raised.value.status, raised.value.code) == (507, "insufficient_storage")
    lines = [r for r in caplog.records if getattr(r, "code", None) == "insufficient_storage"]
    assert len(lines) == 1 and lines[0].cause == "SQLITE_FULL"
    assert path


def test_a_read_only_database_is_503_database_read_only(db: Db, settings):
    if db.dialect == "postgresql":
        url = settings.database_url.replace(
            "options=-csearch_path", "options=-cdefault_transaction_read_only%3Don%20-csearch_path"
        )
        read_only = Db(create_database(settings.model_copy(update={"database_url": url})))
    else:
        read_only = Db(create_database(settings))
        raw, _ = read_only.database._loop_connection("_writer")  # type: ignore[attr-defined]
        raw.execute("PRAGMA query_only = 1")
    with pytest.raises(ApiError) as raised:
        make_product(read_only, name="Refused")
    read_only.close()
    assert (raised.value.status, raised.value.code) == (503, "database_read_only")
    assert db.value("SELECT count(*) FROM products") == 0


def test_driver_errors_never_carry_the_statements_parameters(db: Db):
    from app.core.formats import utcnow

    secret = "card-4242-4242-4242-4242"

    async def break_a_check(conn: Connection) -> None:
        await conn.execute(
            Sql(
                "INSERT INTO products (sku, name, price_cents, on_hand, created_at, updated_at) "
                "VALUES (:sku, :name, -1, 1, :now, :now)"
            ),
            {"sku": "S-1", "name": secret, "now": utcnow()},
        )

    with pytest.raises(DatabaseError) as raised:
        db.write(break_a_check)
    assert secret not in str(raised.value)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_an_unreachable_database_is_503_database_unavailable(settings, tmp_path):
    if settings.is_sqlite:
        blocker = tmp_path / "file"
        blocker.write_text("")
        url = f"sqlite:///{blocker}/sub/orders.db"  # a directory that cannot be made
    else:
        url = "postgresql://nobody@127.0.0.1:9/none"
    database = Db(create_database(settings.model_copy(update={"database_url": url})))
    with pytest.raises(ApiError) as raised:
        database.run(database.database.ping())
    database.close()
    assert (raised.value.status, raised.value.code) == (503, "database_unavailable")


def test_stock_helpers_read_the_latest_committed_state(db: Db):
    mug = make_product(db, stock=3)
    db.execute("UPDATE products SET on_hand = 7 WHERE id = :id", id=mug.id)
    assert stock_of(db, mug.id) == 7


def test_every_sqlalchemy_engine_hides_parameters():
    """SQLAlchemy renders `[parameters: ...]` into its errors unless told not to."""
    import re

    from tests.support.live_server import ROOT as root

    sources = [*root.glob("app/**/*.py"), *root.glob("tests/**/*.py"), *root.glob("bench/*.py")]
    sources.append(root / "migrations" / "env.py")
    calls = []
    for source in sources:
        text = source.read_text()
        for match in re.finditer(r"\bcreate_engine\(", text):
            depth, end = 0, match.end() - 1
            for end in range(match.end() - 1, len(text)):
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                if depth == 0:
                    break
            calls.append((source.name, text[match.start() : end + 1]))
    assert len(calls) >= 5, calls
    assert [name for name, call in calls if "hide_parameters=True" not in call] == []


def test_importing_the_app_touches_no_disk(tmp_path):
    """Building the app opens no database: ./data/ appears at the first request, not before."""
    import os
    import subprocess
    import sys

    from tests.support.live_server import ROOT as root

    result = subprocess.run(
        [sys.executable, "-c", "import app.main"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(root), "DATABASE_URL": "sqlite:///./data/x.db"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_scan_runs_in_a_thread_until_it_has_measured_cheap(sqlite_db: Db):
    import threading

    loop_thread = sqlite_db.run(_current_thread())
    cheap = Sql("SELECT count(*) FROM products")
    costly = Sql(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000) "
        "SELECT count(*) FROM n"
    )

    async def count(conn: Connection, statement: Sql) -> int:
        await conn.fetch_value(statement)
        return threading.get_ident()

    cheap_threads = [sqlite_db.scan(count, cheap) for _ in range(6)]
    costly_threads = [sqlite_db.scan(count, costly) for _ in range(5)]
    # `statement` is positional, so both share one shape: the costly runs take it back.
    after_costly = sqlite_db.scan(count, cheap)

    assert cheap_threads[0] != loop_thread
    assert cheap_threads[-1] == loop_thread
    assert costly_threads[0] == loop_thread  # measured on the loop once, then back
    assert loop_thread not in costly_threads[1:]
    assert after_costly != loop_thread


async def _current_thread() -> int:
    import threading

    return threading.get_ident()


def test_the_database_writes_a_timestamp_as_the_api_does_on_both_engines(db: Db):
    """Views read their times as text made in SQL (timestamp_text): the same text rfc3339
    makes in Python, for a time with microseconds and an offset, and NULL for NULL."""
    from datetime import UTC, datetime, timedelta, timezone

    from app.core.formats import rfc3339
    from app.db.base import timestamp_text

    mug = make_product(db, name="Mug")
    moment = datetime(2026, 11, 27, 10, 30, 5, 987654, tzinfo=timezone(timedelta(hours=1)))
    db.execute(
        "UPDATE products SET updated_at = :t, archived_at = NULL WHERE id = :id",
        t=moment,
        id=mug.id,
    )
    text = timestamp_text("updated_at", db.dialect)
    nothing = timestamp_text("archived_at", db.dialect)
    row = db.rows(f"SELECT {text} AS t, {nothing} AS n FROM products WHERE id = :id", id=mug.id)[0]
    assert row == {"t": rfc3339(moment.astimezone(UTC)), "n": None}
    assert row["t"] == "2026-11-27T09:30:05Z"
