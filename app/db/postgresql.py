"""PostgreSQL through asyncpg: a pool per event loop, statements prepared once per connection.

Round trips are what a PostgreSQL request costs here (bench/README.md "Round trips on PostgreSQL"),
so: a read unit runs its statements without BEGIN/COMMIT (each sees the latest committed state, as
on SQLite), a write unit is BEGIN, its statements, COMMIT (or, marked `one_statement_on_postgresql`,
its one statement alone, or, when that statement could not serve the call alone and raised
`NeedsTransaction`, BEGIN, the unit again, COMMIT). Connections come from the service's own
pool (app/db/pg_pool.py: no task or timer per request), which does not reset a connection it
gets back: nothing a unit leaves behind outlives its transaction. A unit that lost a race
(serialization failure, deadlock) runs again.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from app.core import metrics
from app.core.config import Settings
from app.core.errors import ApiError
from app.db.base import (
    ClientGone,
    Connection,
    Database,
    DatabaseError,
    NeedsTransaction,
    RaceLost,
    Sql,
    UniqueViolation,
    database_read_only,
    database_unavailable,
    gone,
    insufficient_storage,
    log_storage_error,
    runs_as_one_statement,
    statement_too_slow,
)
from app.db.pg_pool import ConnectionPool, PoolClosed

log = logging.getLogger("app.database")

# serialization_failure and deadlock_detected: the transaction may simply run again.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
ATTEMPTS = 3
# A statement running longer than this is cancelled by the server.
STATEMENT_TIMEOUT_MS = 10_000
_SELECT_ONE = Sql("SELECT 1")
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "57", "53")  # connection, operator intervention, resources


class _LostRace(RaceLost):
    """The database aborted the transaction for a race it lost: run the unit again."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def connect_arguments(url: str) -> dict[str, Any]:
    """asyncpg's connect() keywords from the service's URL (`postgresql+psycopg://...`)."""
    parsed = make_url(url)
    server_settings: dict[str, str] = {}
    options = parsed.query.get("options")
    if isinstance(options, str):
        # libpq's `options=-csearch_path=x -cfoo=bar`: asyncpg takes them as server settings.
        for part in options.replace("-c ", "-c").split():
            if part.startswith("-c") and "=" in part:
                key, _, value = part[2:].partition("=")
                server_settings[key] = value
    server_settings.setdefault("statement_timeout", str(STATEMENT_TIMEOUT_MS))
    return {
        "host": parsed.host or "localhost",
        "port": parsed.port or 5432,
        "user": parsed.username,
        "password": parsed.password,
        "database": parsed.database,
        "server_settings": server_settings,
    }


def classify(error: BaseException) -> Exception:
    """The service's view of a driver error; never its DETAIL, which may quote values."""
    sqlstate = getattr(error, "sqlstate", None)
    if sqlstate in RETRYABLE_SQLSTATES:
        return _LostRace(sqlstate)
    if sqlstate == "23505":
        return UniqueViolation(getattr(error, "constraint_name", None))
    refusal: ApiError | None = None
    if sqlstate == "53100":
        refusal = insufficient_storage()
    elif sqlstate == "25006":
        refusal = database_read_only()
    elif sqlstate == "57014":
        refusal = statement_too_slow()
    elif (
        isinstance(error, OSError | asyncio.TimeoutError | TimeoutError)
        or isinstance(error, asyncpg.exceptions.InterfaceError)
        or (sqlstate is not None and sqlstate[:2] in _UNAVAILABLE_SQLSTATE_CLASSES)
    ):
        refusal = database_unavailable()
    if refusal is None:
        return DatabaseError(f"{sqlstate or type(error).__name__}: {type(error).__name__}")
    log_storage_error(refusal.code, sqlstate or type(error).__name__)
    return refusal


def _arguments(sql: Sql, params: Any) -> tuple[str, list[Any]]:
    text, names = sql.compiled("postgresql")
    if not names:
        return text, []
    return text, [params[name] for name in names]


def _row(record: asyncpg.Record) -> dict[str, Any]:
    # `timestamp without time zone` columns come back naive: they hold UTC.
    return {
        key: value.replace(tzinfo=UTC)
        if type(value) is datetime and value.tzinfo is None
        else value
        for key, value in record.items()
    }


class PostgresConnection(Connection):
    dialect = "postgresql"
    __slots__ = ("_raw", "in_transaction")

    def __init__(self, raw: asyncpg.Connection) -> None:
        self._raw = raw
        self.in_transaction = True

    async def execute(self, sql: Sql, params: Any = None) -> int:
        text, args = _arguments(sql, params)
        try:
            status = await self._raw.execute(text, *args)
        except asyncpg.PostgresError as error:
            raise classify(error) from None
        count = status.rpartition(" ")[2]
        return int(count) if count.isdigit() else 0

    async def fetch_one(self, sql: Sql, params: Any = None) -> dict[str, Any] | None:
        text, args = _arguments(sql, params)
        try:
            record = await self._raw.fetchrow(text, *args)
        except asyncpg.PostgresError as error:
            raise classify(error) from None
        return None if record is None else _row(record)

    async def fetch_all(self, sql: Sql, params: Any = None) -> list[dict[str, Any]]:
        text, args = _arguments(sql, params)
        try:
            records = await self._raw.fetch(text, *args)
        except asyncpg.PostgresError as error:
            raise classify(error) from None
        return [_row(record) for record in records]

    async def fetch_value(self, sql: Sql, params: Any = None) -> Any:
        text, args = _arguments(sql, params)
        try:
            value = await self._raw.fetchval(text, *args)
        except asyncpg.PostgresError as error:
            raise classify(error) from None
        if type(value) is datetime and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


async def _select_one(conn: Connection) -> None:
    await conn.fetch_value(_SELECT_ONE)


class PostgresDatabase(Database):
    dialect = "postgresql"

    def __init__(self, url: str, *, pool_size: int, acquire_timeout: float) -> None:
        self._connect = connect_arguments(url)
        self.display_url = make_url(url).render_as_string(hide_password=True)
        self.pool_size = pool_size
        self.acquire_timeout = acquire_timeout
        self._pool: ConnectionPool | None = None
        self._pool_loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> "PostgresDatabase":
        return cls(
            settings.database_url,
            pool_size=settings.db_pool_size + settings.db_max_overflow,
            acquire_timeout=settings.db_pool_timeout_seconds,
        )

    def _get_pool(self) -> ConnectionPool:
        loop = asyncio.get_running_loop()
        if self._pool is None or self._pool_loop is not loop:
            if self._pool is not None:
                # A test client may run each request on a loop of its own; a pool belongs to one
                # (and the old loop may be closed already: its sockets go with it).
                self._pool.terminate()
            self._pool = ConnectionPool(self._open, self.pool_size)
            self._pool_loop = loop
            metrics.pool_capacity(self.pool_size)
        return self._pool

    async def _open(self) -> asyncpg.Connection:
        return await asyncpg.connect(**self._connect, timeout=min(self.acquire_timeout, 10.0))

    async def _acquire(self) -> tuple[ConnectionPool, asyncpg.Connection]:
        """A connection and the pool it goes back to (which `close` may already have let go)."""
        pool = self._get_pool()
        try:
            raw = await pool.acquire(self.acquire_timeout)
        except PoolClosed:
            raise database_unavailable() from None
        except (TimeoutError, OSError, asyncpg.PostgresError) as error:
            raise classify(error) from None
        metrics.connection_checked_out()
        return pool, raw

    async def _on_connection(self, work: Callable[[asyncpg.Connection], Awaitable[Any]]) -> Any:
        """`work(raw)` on a connection of the pool, given back afterwards: for another unit,
        unless a socket or driver error (or a cancellation) may have left it mid-statement."""
        pool, raw = await self._acquire()
        reusable = False
        try:
            result = await work(raw)
            reusable = True
            return result
        except (OSError, asyncpg.InterfaceError) as error:
            raise classify(error) from None
        except Exception:
            reusable = True  # the server's answer, or raised between statements (rolled back)
            raise
        finally:
            metrics.connection_checked_in()
            pool.release(raw, reusable=reusable)

    async def read(self, unit: Any, /, *args: Any, **kwargs: Any) -> Any:
        return await self._on_connection(lambda raw: unit(PostgresConnection(raw), *args, **kwargs))

    async def write(self, unit: Any, /, *args: Any, **kwargs: Any) -> Any:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return await self._on_connection(
                    lambda raw: self._transaction(raw, unit, args, kwargs)
                )
            except RaceLost as lost:
                cause = getattr(lost, "sqlstate", type(lost).__name__)
                if attempt == ATTEMPTS:
                    raise DatabaseError(f"{cause} after {ATTEMPTS} attempts") from None
                log.warning("retrying %s after %s", getattr(unit, "__name__", unit), cause)
        raise AssertionError("unreachable")

    async def _transaction(self, raw: asyncpg.Connection, unit: Any, args: Any, kwargs: Any) -> Any:
        if runs_as_one_statement(unit):
            # Its one write statement commits by itself: the client's going is checked before.
            if gone():
                raise ClientGone
            alone = PostgresConnection(raw)
            alone.in_transaction = False
            try:
                return await unit(alone, *args, **kwargs)
            except NeedsTransaction:
                pass  # its statement changed nothing: run it again in a transaction, below
        started = False
        try:
            await raw.execute("BEGIN")
            started = True
            result = await unit(PostgresConnection(raw), *args, **kwargs)
            if gone():
                raise ClientGone
            await raw.execute("COMMIT")
            started = False
            return result
        except asyncpg.PostgresError as error:
            raise classify(error) from None
        finally:
            if started and not raw.is_closed():
                with contextlib.suppress(Exception):
                    await raw.execute("ROLLBACK")

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Connection]:
        pool, raw = await self._acquire()
        reusable = False
        try:
            try:
                await raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            except asyncpg.PostgresError as error:
                raise classify(error) from None
            try:
                yield PostgresConnection(raw)
            finally:
                if not raw.is_closed():
                    await raw.execute("ROLLBACK")
            reusable = True
        finally:
            metrics.connection_checked_in()
            pool.release(raw, reusable=reusable)

    async def ping(self) -> None:
        await self.read(_select_one)

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close(10)
