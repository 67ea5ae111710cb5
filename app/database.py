"""The database engine, request sessions, and the one way to open a writing transaction."""

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

from fastapi import Depends, Request
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import StaticPool
from sqlmodel import Session

from app.config import Settings

# Execution option read by the SQLite `begin` hook below; other engines ignore it.
_SQLITE_BEGIN = "sqlite_begin"
# PostgreSQL's SQLSTATEs for a transaction that lost a race and may simply run again:
# serialization_failure and deadlock_detected.
_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
log = logging.getLogger("app.database")
P = ParamSpec("P")
R = TypeVar("R")


def create_db_engine(settings: Settings) -> Engine:
    if settings.is_sqlite:
        return _sqlite_engine(settings.database_url, settings.sqlite_busy_timeout_ms)
    return create_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        pool_pre_ping=True,
    )


def _sqlite_engine(url: str, busy_timeout_ms: int) -> Engine:
    database = make_url(url).database
    in_memory = database in (None, "", ":memory:")
    if not in_memory:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
        # One shared connection keeps an in-memory database alive for the engine's life.
        poolclass=StaticPool if in_memory else None,
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

    return engine


@contextmanager
def write_transaction(session: Session) -> Iterator[Session]:
    """One unit of work that writes: committed at the end, rolled back on any exception."""
    if session.in_transaction():
        # Writes only ever happen in here, so an open transaction has only read: end it, so
        # the unit of work starts with the write lock (SQLite) and sees fresh rows.
        session.commit()
    with session.begin():
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


def get_session(request: Request) -> Iterator[Session]:
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
