"""The database engine, the threads that run each request's unit of work, and the one way to
open a writing transaction."""

import asyncio
import contextvars
import functools
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Annotated, Any, Concatenate, ParamSpec, TypeVar
from weakref import WeakKeyDictionary

from fastapi import Depends, Request
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.pool import StaticPool
from sqlmodel import Session

from app.config import Settings
from app.writer_lock import WriterLock

# Execution option read by the SQLite `begin` hook below; other engines ignore it.
_SQLITE_BEGIN = "sqlite_begin"
# PostgreSQL's SQLSTATEs for a transaction that lost a race and may simply run again:
# serialization_failure and deadlock_detected.
_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
log = logging.getLogger("app.database")
P = ParamSpec("P")
R = TypeVar("R")

# Per SQLite engine: the queue its writers wait in (see app/writer_lock.py).
_sqlite_writer_locks: WeakKeyDictionary[Engine, WriterLock] = WeakKeyDictionary()


def create_db_engine(settings: Settings) -> Engine:
    pool = {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout_seconds,
    }
    if settings.is_sqlite:
        engine = _sqlite_engine(settings.database_url, settings.sqlite_busy_timeout_ms, pool)
    else:
        engine = create_engine(settings.database_url, pool_pre_ping=True, **pool)
    return engine


def _sqlite_engine(url: str, busy_timeout_ms: int, pool: dict[str, Any]) -> Engine:
    database = make_url(url).database
    in_memory = database in (None, "", ":memory:")
    if not in_memory:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
        # One shared connection keeps an in-memory database alive for the engine's life.
        **({"poolclass": StaticPool} if in_memory else pool),
    )

    @event.listens_for(engine, "connect")
    def configure_connection(dbapi_connection: Any, _record: Any) -> None:
        # Hand BEGIN to SQLAlchemy (see `begin` below) instead of the driver's implicit one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def begin(connection: Any) -> None:
        # Writers take the write lock up front (IMMEDIATE) so concurrent writers queue on the
        # busy timeout; a DEFERRED writer that upgrades from a read lock fails at once instead.
        mode = connection.get_execution_options().get(_SQLITE_BEGIN, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    lock_path = None if in_memory else database
    _sqlite_writer_locks[engine] = WriterLock(lock_path, busy_timeout_ms / 1000)
    return engine


@contextmanager
def write_transaction(session: Session) -> Iterator[Session]:
    """One unit of work that writes: committed at the end, rolled back on any exception."""
    if session.in_transaction():
        # Writes only ever happen in here, so an open transaction has only read: end it, so
        # the unit of work starts with the write lock (SQLite) and sees fresh rows.
        session.commit()
    with _writer_turn(session), session.begin():
        session.connection(execution_options={_SQLITE_BEGIN: "IMMEDIATE"})
        yield session


def retry_on_conflict(attempts: int = 3) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Run a unit of work again when the database aborted it for a race it lost.

    Rows are locked in a fixed order, so this should not happen; if it ever does, the client
    gets its answer a few milliseconds later instead of a 500.
    """

    def decorate(unit_of_work: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(unit_of_work)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            for attempt in range(1, attempts + 1):
                try:
                    return unit_of_work(*args, **kwargs)
                except DBAPIError as error:
                    sqlstate = getattr(error.orig, "sqlstate", None)
                    if sqlstate not in _RETRYABLE_SQLSTATES or attempt == attempts:
                        raise
                    log.warning("retrying %s after %s", unit_of_work.__name__, sqlstate)
            raise AssertionError("unreachable")

        return run

    return decorate


@contextmanager
def no_lock_wait(session: Session) -> Iterator[None]:
    """Statements inside fail at once instead of waiting for another transaction's lock.

    For PostgreSQL, `lock_timeout` for just these statements; use it inside a savepoint, which
    also undoes the setting if a statement fails. SQLite's writers already hold the one write
    lock, so there is nothing to wait for there.
    """
    if session.get_bind().dialect.name != "postgresql":
        yield
        return
    session.execute(text("SET LOCAL lock_timeout = '100ms'"))
    yield
    session.execute(text("SET LOCAL lock_timeout TO DEFAULT"))


def _writer_turn(session: Session) -> AbstractContextManager[Any]:
    lock = _sqlite_writer_locks.get(session.get_bind())  # type: ignore[arg-type]
    return lock if lock is not None else nullcontext()


class Database:
    """The engine, and the threads that run the requests' units of work against it.

    A route hands its whole unit of work, session included, to one of these threads and
    awaits the result on the event loop: one thread hop per request, and the loop itself
    never waits for the database. Each thread holds at most one session, and there are no
    more threads than pooled connections, so a unit of work never waits for a connection
    either: requests queue here, in arrival order, and one that has queued longer than the
    pool timeout is answered 503 without running rather than served late.
    """

    def __init__(self, engine: Engine, threads: int, queue_timeout: float) -> None:
        self.engine = engine
        self.queue_timeout = queue_timeout
        self._threads = ThreadPoolExecutor(threads, thread_name_prefix="database")

    async def run(
        self, work: Callable[Concatenate[Session, P], R], *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """`work(session, *args, **kwargs)` in a database thread, with a session of its own."""
        call = functools.partial(self._in_session, time.monotonic(), work, *args, **kwargs)
        # The request's context (its id, for the logs) goes along into the thread.
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(self._threads, context.run, call)

    def _in_session(self, queued_at: float, work: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        if time.monotonic() - queued_at > self.queue_timeout:
            raise PoolTimeoutError("no database thread became free in time")
        with Session(self.engine, expire_on_commit=False) as session:
            return work(session, *args, **kwargs)

    def close(self) -> None:
        """Let the units of work in hand finish, then close every connection."""
        self._threads.shutdown(wait=True)
        self.engine.dispose()


def create_database(settings: Settings, engine: Engine | None = None) -> Database:
    return Database(
        engine or create_db_engine(settings),
        threads=settings.db_threads,
        queue_timeout=settings.db_pool_timeout_seconds,
    )


async def get_database(request: Request) -> Database:
    return request.app.state.database  # type: ignore[no-any-return]


# `async def` routes take this and `await database.run(rule, ...)`; they never hold a session.
DatabaseDep = Annotated[Database, Depends(get_database)]
