"""SQLite through the standard library's sqlite3, on the event loop.

A statement on a local file takes microseconds, so units of work run on the loop, with these
rules (docs/data-layer.md; bench/README.md "SQLite writes and checkpoints" has the figures):
- The loop never waits on a lock. Writers queue on an asyncio lock in the process, then take
  SQLite's write lock with `BEGIN IMMEDIATE` under a zero busy timeout, retried with async
  sleeps until a deadline (then 503): another process's writer never blocks this loop.
- Inside a transaction a unit awaits nothing but the database: the unit's coroutine is driven
  to its end in one step, and one that suspends on anything else is refused as a bug.
- Writes commit in groups: a writer's turn runs every unit queued by then (up to a bound) in
  one transaction, each in a savepoint, so one COMMIT and one write of the pages they share
  serve them all; a unit that fails rolls back alone.
- Every statement runs under a time budget (the progress handler interrupts it).
- Automatic checkpoints are off; the writer checkpoints in its turn once the WAL has grown, so
  the WAL stays small instead of outgrowing a checkpointer that never catches up. The
  checkpoint's file writes and syncs run in a database thread: the copying while writers go
  on, the last few pages and the WAL's reset in a turn that holds them.
- Statements that cost O(rows) go through `scan`, which runs them in a database thread.
"""

import asyncio
import collections
import contextlib
import contextvars
import logging
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Coroutine
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from app.core.config import Settings
from app.core.errors import ApiError
from app.db.base import (
    ClientGone,
    Connection,
    Database,
    DatabaseError,
    RaceLost,
    Sql,
    UniqueViolation,
    database_read_only,
    database_unavailable,
    gone,
    insufficient_storage,
    log_storage_error,
    statement_too_slow,
)

log = logging.getLogger("app.database")

# A statement on the loop that runs longer than this is interrupted: it would stall every
# request of the worker. Scans (in a thread) get the settings' pool timeout instead.
LOOP_STATEMENT_BUDGET_SECONDS = 0.5
# The progress handler runs every this many virtual machine instructions.
_PROGRESS_STEPS = 2000
# Checkpoint once the WAL passes this size; look at its size every few commits.
WAL_CHECKPOINT_BYTES = 4 * 1024 * 1024
_CHECK_WAL_EVERY = 16
# A checkpoint in its thread waits up to this long for a reader to leave the WAL's start.
CHECKPOINT_WAIT_MS = 100
# A writer whose BEGIN IMMEDIATE met another process's write lock tries again after 0.2 ms,
# doubling up to this: another process's turn lasts a few ms, and a longer sleep would let
# it take the lock again and again before this one looks (two workers' order p99).
BEGIN_RETRY_MAX_SECONDS = 0.001
# One writer's turn takes at most this many units, and starts no new one after this long.
WRITE_BATCH_MAX = 32
WRITE_TURN_SECONDS = 0.01
_EMPTY: dict[str, Any] = {}
# A scan that took at most this much CPU in its thread this many times in a row runs on the
# loop. CPU, not elapsed time: under load a thread waits for the GIL far longer than its
# statement runs, and elapsed time would keep every scan in the thread, where each one makes
# the loop wait for the GIL in turn.
CHEAP_SCAN_SECONDS = 0.001
CHEAP_RUNS_BEFORE_LOOP = 3


def _adapt_datetime(moment: datetime) -> str:
    # SQLAlchemy's storage format for SQLite DATETIME columns, in UTC: existing files stay valid.
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(" ", "microseconds")


def _convert_datetime(stored: bytes) -> datetime:
    return datetime.fromisoformat(stored.decode()).replace(tzinfo=UTC)


sqlite3.register_adapter(datetime, _adapt_datetime)
sqlite3.register_converter("DATETIME", _convert_datetime)


class _Busy(Exception):
    """SQLITE_BUSY: another connection holds a lock this one needs; try again shortly."""


def classify(error: sqlite3.Error) -> Exception:
    """The service's view of a driver error; it never carries a statement's parameters."""
    name = getattr(error, "sqlite_errorname", None) or type(error).__name__
    code = getattr(error, "sqlite_errorcode", 0) & 0xFF
    if isinstance(error, sqlite3.IntegrityError):
        if name in ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"):
            return UniqueViolation(str(error).rpartition(": ")[2] or None)
        return DatabaseError(f"{name}: {error}")
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return _Busy(name)
    refusal: ApiError | None = None
    if code == sqlite3.SQLITE_FULL:
        refusal = insufficient_storage()
    elif code == sqlite3.SQLITE_READONLY:
        refusal = database_read_only()
    elif code == sqlite3.SQLITE_INTERRUPT:
        refusal = statement_too_slow()
    elif code in (
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_NOTADB,
    ):
        refusal = database_unavailable()
    if refusal is None:
        return DatabaseError(f"{name}: {error}")
    log_storage_error(refusal.code, name)
    return refusal


# SQL functions the statements use on SQLite that SQLite lacks. `unicode_lower`: SQLite's own
# lower() (and LIKE's case folding) know ASCII letters only, so a search for "ÉCLAIR" would miss
# "éclair"; this is Python's str.lower, as PostgreSQL's lower() folds every letter.
def install_functions(raw: sqlite3.Connection) -> None:
    raw.create_function("unicode_lower", 1, str.lower, deterministic=True)


def open_connection(path: str, *, in_memory: bool = False) -> sqlite3.Connection:
    """A connection as the service uses it: autocommit (the seam sends BEGIN and COMMIT), WAL,
    foreign keys on, synchronous=NORMAL, no busy waiting, no automatic checkpoints."""
    raw = sqlite3.connect(
        path,
        isolation_level=None,
        detect_types=sqlite3.PARSE_DECLTYPES,
        check_same_thread=False,
        cached_statements=512,
    )
    try:
        # Switching a file to WAL needs a moment's lock: the one wait, once, at connect.
        raw.execute("PRAGMA busy_timeout=5000")
        if not in_memory:
            raw.execute("PRAGMA journal_mode=WAL")
        raw.execute("PRAGMA synchronous=NORMAL")
        raw.execute("PRAGMA foreign_keys=ON")
        raw.execute("PRAGMA wal_autocheckpoint=0")
        raw.execute("PRAGMA busy_timeout=0")
    except sqlite3.Error as error:
        raw.close()
        raise classify(error) from None
    install_functions(raw)
    return raw


class _Budget:
    """The deadline of the statement running on a connection, read by its progress handler."""

    __slots__ = ("deadline", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds, self.deadline = seconds, float("inf")

    def exceeded(self) -> bool:
        return time.monotonic() > self.deadline


def _with_budget(raw: sqlite3.Connection, seconds: float) -> _Budget:
    budget = _Budget(seconds)
    raw.set_progress_handler(budget.exceeded, _PROGRESS_STEPS)
    return budget


class SqliteConnection(Connection):
    dialect = "sqlite"
    __slots__ = ("_raw", "_budget")

    def __init__(self, raw: sqlite3.Connection, budget: _Budget) -> None:
        self._raw, self._budget = raw, budget

    def _run(self, sql: Sql, params: Any) -> sqlite3.Cursor:
        budget = self._budget
        budget.deadline = time.monotonic() + budget.seconds
        try:
            return self._raw.execute(sql.text("sqlite"), params or _EMPTY)
        except sqlite3.Error as error:
            raise classify(error) from None
        finally:
            budget.deadline = float("inf")

    async def execute(self, sql: Sql, params: Any = None) -> int:
        return self._run(sql, params).rowcount

    async def fetch_one(self, sql: Sql, params: Any = None) -> dict[str, Any] | None:
        cursor = self._run(sql, params)
        try:
            row = cursor.fetchone()
        except sqlite3.Error as error:
            raise classify(error) from None
        if row is None:
            return None
        return dict(zip([column[0] for column in cursor.description], row, strict=True))

    async def fetch_all(self, sql: Sql, params: Any = None) -> list[dict[str, Any]]:
        cursor = self._run(sql, params)
        try:
            rows = cursor.fetchall()
        except sqlite3.Error as error:
            raise classify(error) from None
        if not rows:
            return []
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in rows]

    async def fetch_value(self, sql: Sql, params: Any = None) -> Any:
        cursor = self._run(sql, params)
        row = cursor.fetchone()
        return None if row is None else row[0]


def run_to_end(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Drive a unit of work that awaits only SQLite (whose calls never suspend) to its end."""
    try:
        coroutine.send(None)
    except StopIteration as finished:
        return finished.value
    coroutine.close()
    raise RuntimeError(
        "a unit of work awaited something other than the database inside a SQLite "
        "transaction; move that await out of the unit (docs/data-layer.md)"
    )


class SqliteDatabase(Database):
    dialect = "sqlite"

    def __init__(
        self,
        path: str,
        *,
        deadline_seconds: float,
        scan_threads: int,
        scan_budget_seconds: float,
        shared: sqlite3.Connection | None = None,
    ) -> None:
        self.path = path
        self.display_url = f"sqlite:///{path}"
        self.in_memory = path in ("", ":memory:")
        self.deadline_seconds = deadline_seconds
        self.scan_budget_seconds = scan_budget_seconds
        self._wal_path = None if self.in_memory else f"{path}-wal"
        self._shared = shared
        self._writer: tuple[sqlite3.Connection, _Budget] | None = None
        self._reader: tuple[sqlite3.Connection, _Budget] | None = None
        self._turns: _Turns | None = None
        self._checkpointer: sqlite3.Connection | None = None
        self._copying: asyncio.Future[None] | None = None  # a checkpoint's first part
        self._commits = 0
        self._cheap_runs: dict[tuple[Any, ...], int] = {}
        self._threads = ThreadPoolExecutor(scan_threads, thread_name_prefix="database")
        self._thread_local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._opened_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, engine: Engine | None = None) -> "SqliteDatabase":
        database = make_url(settings.database_url).database or ""
        shared = None
        if database in ("", ":memory:"):
            # One connection is the whole database: share the engine's if the caller has one.
            shared = _driver_connection(engine) if engine is not None else None
        return cls(
            database,
            deadline_seconds=settings.sqlite_busy_timeout_ms / 1000,
            scan_threads=settings.db_threads,
            scan_budget_seconds=settings.db_pool_timeout_seconds,
            shared=shared,
        )

    # ------------------------------------------------------------------ connections

    def _open(self) -> sqlite3.Connection:
        if self._shared is not None:
            return self._shared
        if self.in_memory:
            self._shared = open_connection(":memory:", in_memory=True)
            return self._shared
        try:
            # Created at the first connection, not before: building the app touches no disk.
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        except OSError as error:
            log_storage_error("database_unavailable", type(error).__name__)
            raise database_unavailable() from None
        raw = open_connection(self.path)
        with self._opened_lock:
            self._opened.append(raw)
        return raw

    def _loop_connection(self, which: str) -> tuple[sqlite3.Connection, _Budget]:
        held = getattr(self, which)
        if held is None:
            raw = self._open()
            held = (raw, _with_budget(raw, LOOP_STATEMENT_BUDGET_SECONDS))
            setattr(self, which, held)
        return held

    # ------------------------------------------------------------------ units of work

    async def read(self, unit: Any, /, *args: Any, **kwargs: Any) -> Any:
        # No yield here: the request path yields once per request after admission
        # (app/http/request_path.py), which is what interleaves a burst of requests.
        raw, budget = self._loop_connection("_reader")
        deadline = time.monotonic() + self.deadline_seconds
        delay = 0.0005
        while True:
            try:
                return run_to_end(unit(SqliteConnection(raw, budget), *args, **kwargs))
            except _Busy:
                # A reader in WAL mode waits only while the WAL index is being rebuilt.
                if time.monotonic() + delay > deadline:
                    raise database_unavailable() from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.01)

    async def scan(self, unit: Any, /, *args: Any, **kwargs: Any) -> Any:
        """In a database thread; or on the loop while this shape of call has measured cheap
        (a count over a thousand rows takes microseconds, less than the hop to a thread)."""
        if self.in_memory:
            return await self.read(unit, *args, **kwargs)
        shape = _shape_of(unit, kwargs)
        if self._cheap_runs.get(shape, 0) >= CHEAP_RUNS_BEFORE_LOOP:
            raw, budget = self._loop_connection("_reader")
            started = time.thread_time()
            try:
                return run_to_end(unit(SqliteConnection(raw, budget), *args, **kwargs))
            except _Busy:
                raise database_unavailable() from None
            finally:
                if time.thread_time() - started > CHEAP_SCAN_SECONDS:
                    self._cheap_runs[shape] = 0  # grown: back to the thread from the next call
        loop = asyncio.get_running_loop()
        result, seconds = await loop.run_in_executor(self._threads, self._scan, unit, args, kwargs)
        cheap = seconds <= CHEAP_SCAN_SECONDS
        self._cheap_runs[shape] = self._cheap_runs.get(shape, 0) + 1 if cheap else 0
        return result

    def _scan(self, unit: Any, args: Any, kwargs: Any) -> tuple[Any, float]:
        started = time.thread_time()
        return self._scan_unit(unit, args, kwargs), time.thread_time() - started

    def _scan_unit(self, unit: Any, args: Any, kwargs: Any) -> Any:
        held = getattr(self._thread_local, "connection", None)
        if held is None:
            raw = self._open()
            held = (raw, _with_budget(raw, self.scan_budget_seconds))
            self._thread_local.connection = held
        deadline = time.monotonic() + self.deadline_seconds
        while True:
            try:
                return run_to_end(unit(SqliteConnection(*held), *args, **kwargs))
            except _Busy:
                if time.monotonic() > deadline:
                    raise database_unavailable() from None
                time.sleep(0.001)

    async def write(self, unit: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Queue the unit for the writer's next turn and wait for its outcome, which is known
        only after COMMIT. A turn runs every unit queued by then in one transaction, each in a
        savepoint of its own: one unit's failure rolls back that unit alone, and one COMMIT
        (and one write of the pages they share) serves them all."""
        loop = asyncio.get_running_loop()
        turns = self._turns_of(loop)
        done = loop.create_future()
        turns.pending.append(
            _Write(unit, args, kwargs, contextvars.copy_context(), done, time.monotonic())
        )
        if turns.task is None:
            turns.task = loop.create_task(self._take_turns(turns))
        return await done

    def _turns_of(self, loop: asyncio.AbstractEventLoop) -> "_Turns":
        # Test clients may run each request on a loop of their own; a queue belongs to one.
        if self._turns is None or self._turns.loop is not loop:
            self._turns = _Turns(loop)
        return self._turns

    async def _take_turns(self, turns: "_Turns") -> None:
        try:
            while turns.pending:
                await self._turn(turns)
                if turns.pending:
                    await asyncio.sleep(0)  # let reads and responses through between turns
        except BaseException as error:  # a bug here must not leave writers waiting forever
            for item in turns.pending:
                _settle(item, error=error)
            turns.pending.clear()
            raise
        finally:
            turns.task = None

    async def _turn(self, turns: "_Turns") -> None:
        raw, budget = self._loop_connection("_writer")
        try:
            await self._begin(raw, time.monotonic() + self.deadline_seconds)
        except Exception as error:
            for item in turns.pending:
                _settle(item, error=error)
            turns.pending.clear()
            return
        started = time.monotonic()
        done: list[tuple[_Write, Any]] = []
        while turns.pending and len(done) < WRITE_BATCH_MAX:
            if time.monotonic() - started > WRITE_TURN_SECONDS:
                break  # the rest wait for the next turn: the loop must not stall on one
            item = turns.pending.popleft()
            if item.done.done():
                continue  # its request was cancelled while it waited
            if started - item.queued_at > self.deadline_seconds:
                _settle(item, error=_writers_queued_too_long())
                continue
            ok, outcome = _in_savepoint(raw, budget, item)
            if not raw.in_transaction:
                # SQLite rolled the whole transaction back (a full disk, an I/O error): the
                # units before this one are undone too, and their requests get its error.
                lost = outcome if not ok else database_unavailable()
                for earlier, _ in done:
                    _settle(earlier, error=lost)
                _settle(item, error=lost)
                return
            if ok:
                done.append((item, outcome))
            else:
                _settle(item, error=outcome)
        if not done:
            _rollback(raw)
            return
        try:
            _execute(raw, "COMMIT")
        except BaseException as error:
            _rollback(raw)
            for item, _ in done:
                _settle(item, error=error)
            return
        for item, result in done:
            _settle(item, result=result)
        await self._after_commit(len(done))

    async def _begin(self, raw: sqlite3.Connection, deadline: float) -> None:
        """Take SQLite's write lock without ever blocking the loop on it."""
        delay = 0.0002
        while True:
            try:
                _execute(raw, "BEGIN IMMEDIATE")
                return
            except _Busy:
                if time.monotonic() + delay > deadline:
                    raise database_unavailable(
                        "Another process held the database's write lock for too long."
                    ) from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, BEGIN_RETRY_MAX_SECONDS)

    async def _after_commit(self, commits: int) -> None:
        """Still in the writer's turn, once the WAL has grown (automatic checkpoints are off):
        finish a checkpoint whose copying is done, or start one. A checkpoint writes and syncs
        files, so it runs in a database thread, in two parts. Copying the WAL into the database
        (PASSIVE) goes on while writers keep committing; then, in a turn of its own, writers held, a
        TRUNCATE copies what they added meanwhile (little) and empties the WAL. Holding writers for
        the whole checkpoint stalled every write for ~30 ms each time; never holding them lets the
        WAL grow without end under a steady load (bench/README.md "SQLite writes and
        checkpoints")."""
        before, self._commits = self._commits, self._commits + commits
        loop = asyncio.get_running_loop()
        if self._copying is not None:
            if self._copying.done():
                self._copying = None
                try:
                    await loop.run_in_executor(self._threads, self._checkpoint, "TRUNCATE")
                except Exception:  # a checkpoint that fails must not fail the writers
                    log.exception("WAL checkpoint failed")
            return
        if (
            self._wal_path is None
            or before // _CHECK_WAL_EVERY == self._commits // _CHECK_WAL_EVERY
        ):
            return  # look at the WAL's size every few commits
        try:
            size = os.stat(self._wal_path).st_size
        except FileNotFoundError:
            return
        if size >= WAL_CHECKPOINT_BYTES:
            self._copying = loop.run_in_executor(self._threads, self._checkpoint, "PASSIVE")

    def _checkpoint(self, mode: str) -> None:
        raw = self._checkpointer
        try:
            if raw is None:
                raw = self._checkpointer = self._open()
                # In its thread it may wait a moment for readers to leave the WAL's start.
                raw.execute(f"PRAGMA busy_timeout={CHECKPOINT_WAIT_MS}")
            # TRUNCATE resets the file when no reader is using it (else it copies what it can,
            # as PASSIVE does); the writer's turn is held for it, so nothing is appended.
            raw.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        except sqlite3.Error as error:
            log.warning("WAL checkpoint failed: %s", getattr(error, "sqlite_errorname", error))
        except ApiError:
            pass  # opening the file failed; the next turn's statements will say so

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Connection]:
        if self.in_memory:
            # One connection is the whole database (tests): no second reader to isolate.
            raw, budget = self._loop_connection("_reader")
            yield SqliteConnection(raw, budget)
            return
        raw = open_connection(self.path)
        try:
            budget = _with_budget(raw, LOOP_STATEMENT_BUDGET_SECONDS)
            # The read transaction, and its snapshot, start at the first statement.
            _execute(raw, "BEGIN")
            yield SqliteConnection(raw, budget)
        finally:
            with contextlib.suppress(sqlite3.Error):
                raw.execute("ROLLBACK")
            raw.close()

    async def ping(self) -> None:
        await self.read(_select_one)

    async def close(self) -> None:
        self._threads.shutdown(wait=True)
        with self._opened_lock:
            opened, self._opened = self._opened, []
        for raw in opened:
            with contextlib.suppress(sqlite3.Error):
                raw.close()
        self._reader = self._writer = self._checkpointer = None
        self._copying = None


_SELECT_ONE = Sql("SELECT 1")


async def _select_one(conn: Connection) -> None:
    await conn.fetch_value(_SELECT_ONE)


def _rollback(raw: sqlite3.Connection) -> None:
    if raw.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            raw.execute("ROLLBACK")


def _execute(raw: sqlite3.Connection, statement: str) -> None:
    try:
        raw.execute(statement)
    except sqlite3.Error as error:
        raise classify(error) from None


class _Write:
    """A unit of work waiting for the writer's turn, with its request's context (its request
    id, whether its client is gone) to run in."""

    __slots__ = ("unit", "args", "kwargs", "context", "done", "queued_at")

    def __init__(
        self,
        unit: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        context: contextvars.Context,
        done: "asyncio.Future[Any]",
        queued_at: float,
    ) -> None:
        self.unit, self.args, self.kwargs, self.context = unit, args, kwargs, context
        self.done, self.queued_at = done, queued_at


class _Turns:
    """The writers of one event loop: those waiting, and the task taking turns for them."""

    __slots__ = ("loop", "pending", "task")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pending: collections.deque[_Write] = collections.deque()
        self.task: asyncio.Task[None] | None = None


def _in_savepoint(raw: sqlite3.Connection, budget: _Budget, item: _Write) -> tuple[bool, Any]:
    """Run one unit inside the turn's transaction: (True, its result), or (False, the error),
    its own changes rolled back. A unit that lost a race runs again, up to three times."""
    for attempt in range(1, 4):
        try:
            _execute(raw, "SAVEPOINT unit")
        except Exception as error:
            return False, error
        try:
            coroutine = item.unit(SqliteConnection(raw, budget), *item.args, **item.kwargs)
            result = item.context.run(run_to_end, coroutine)
            if item.context.run(gone):
                raise ClientGone
        except RaceLost as error:
            _rollback_to(raw)
            if attempt == 3:
                return False, error
            continue
        except _Busy:
            _rollback_to(raw)
            return False, database_unavailable()
        except Exception as error:
            _rollback_to(raw)
            return False, error
        _execute(raw, "RELEASE unit")
        return True, result
    raise AssertionError("unreachable")


def _rollback_to(raw: sqlite3.Connection) -> None:
    if raw.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            raw.execute("ROLLBACK TO unit")
            raw.execute("RELEASE unit")


def _settle(item: _Write, *, result: Any = None, error: BaseException | None = None) -> None:
    if item.done.done():
        return
    if error is None:
        item.done.set_result(result)
    else:
        item.done.set_exception(error)


def _writers_queued_too_long() -> ApiError:
    return ApiError(
        "overloaded",
        "Too many writes are queued in this instance; retry shortly.",
        headers={"Retry-After": "1"},
    )


def _shape_of(unit: Any, kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """What a scan's cost depends on: which filters it has, and each number's magnitude (an
    offset of 100,000 is not an offset of 0)."""

    def shape(value: Any) -> Any:
        if value is None or value is False:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return len(str(abs(value)))
        return True

    return (unit, *((name, shape(value)) for name, value in sorted(kwargs.items())))


def _driver_connection(engine: Engine) -> sqlite3.Connection:
    proxied = engine.raw_connection()
    raw = proxied.driver_connection
    assert isinstance(raw, sqlite3.Connection)
    raw.isolation_level = None
    raw.execute("PRAGMA foreign_keys=ON")
    raw.execute("PRAGMA busy_timeout=0")
    return raw
