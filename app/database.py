"""The database engine, request sessions, and the one way to open a writing transaction."""

import functools
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Annotated, Any, NamedTuple, ParamSpec, TypeVar
from weakref import WeakKeyDictionary

import anyio
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


# How many requests may hold one of an engine's connections at once, and how long a request
# waits for its turn before answering 503 (see `get_session`).
class _Turns(NamedTuple):
    semaphore: anyio.Semaphore
    timeout: float


_connection_turns: WeakKeyDictionary[Engine, _Turns] = WeakKeyDictionary()


def create_db_engine(settings: Settings) -> Engine:
    pool = {"pool_size": settings.db_pool_size, "max_overflow": settings.db_max_overflow,
            "pool_timeout": settings.db_pool_timeout_seconds}
    if settings.is_sqlite:
        engine = _sqlite_engine(settings.database_url, settings.sqlite_busy_timeout_ms, pool)
    else:
        engine = create_engine(settings.database_url, pool_pre_ping=True, **pool)
    _connection_turns[engine] = _Turns(
        anyio.Semaphore(settings.db_pool_size + settings.db_max_overflow),
        settings.db_pool_timeout_seconds,
    )
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


async def get_session(request: Request) -> AsyncIterator[Session]:
    """The request's session, for `def` routes, which use it in a worker thread.

    The request first waits for its turn to use a pool connection here, on the event loop.
    Waiting inside worker threads would deadlock: a `def` route's session keeps its
    connection until the response has been validated, which takes another worker thread, so
    requests waiting for the pool could hold every thread while the connections' holders
    wait for one, until the pool timeout. Creating a session does no I/O, so no thread is
    needed for it; closing one does, so it is closed in a worker thread, shielded from
    cancellation so that its connection always goes back.
    """
    engine = request.app.state.engine
    turns = await _wait_for_turn(engine)
    session = Session(engine, expire_on_commit=False)
    try:
        yield session
    finally:
        try:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(session.close)
        finally:
            if turns is not None:
                turns.release()


async def _wait_for_turn(engine: Engine) -> anyio.Semaphore | None:
    turns = _connection_turns.get(engine)
    if turns is None:
        return None
    try:
        turns.semaphore.acquire_nowait()
    except anyio.WouldBlock:
        try:
            with anyio.fail_after(turns.timeout):
                await turns.semaphore.acquire()
        except TimeoutError:
            raise PoolTimeoutError("no database connection became free in time") from None
    return turns.semaphore


SessionDep = Annotated[Session, Depends(get_session)]
