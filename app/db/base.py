"""The one seam for transactions: `Database.read` and `Database.write` run a unit of work.

A unit of work is `async def unit(conn, *args, **kwargs)`: plain rules over a `Connection`
that never begin, commit or retry, so one rule may call another inside the same transaction.
The seam opens the transaction, takes the SQLite writer turn, retries a unit that lost a race,
commits, and rolls back on any exception. Statements are `Sql` objects built once at import
time. The drivers (raw sqlite3 on the event loop, asyncpg) live in app/db/; docs/data-layer.md
says why, with the figures in bench/README.md "Today's figures".

SQLAlchemy remains the schema Alembic migrates (app/tables.py) and the engine the migrations
and tests use (`create_db_engine`, app/db/connect.py); nothing on the request path executes
through it. Below the drivers: this module imports neither of them.
"""

import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar
from typing import Any, Concatenate, ParamSpec, TypeVar

from app.core.errors import ApiError, database_unavailable

log = logging.getLogger("app.database")
P = ParamSpec("P")
R = TypeVar("R")

# `:name` placeholders, but not PostgreSQL's `::type` casts nor anything in quotes.
_PLACEHOLDER = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|(?<![:\w]):([A-Za-z_][A-Za-z0-9_]*)")

# Set per request (by the request-path middleware) to a function that says whether the client
# has disconnected; `Database.write` checks it just before COMMIT.
client_gone: ContextVar[Callable[[], bool] | None] = ContextVar("client_gone", default=None)


class Sql:
    """A statement with `:name` placeholders, compiled once per dialect on first use.

    One text serves both engines unless one needs its own (`sqlite=`, `postgresql=`). A step
    one engine does its own way uses a statement of that engine only (`Sql.only`); running it
    on the other raises.
    """

    __slots__ = ("_texts", "_compiled")

    def __init__(
        self, text: str | None = None, *, sqlite: str | None = None, postgresql: str | None = None
    ) -> None:
        if text is None and (sqlite is None or postgresql is None):
            raise ValueError("give one text for both engines, or both sqlite= and postgresql=")
        self._texts: dict[str, str | None] = {
            "sqlite": sqlite or text,
            "postgresql": postgresql or text,
        }
        self._compiled: dict[str, tuple[str, tuple[str, ...]]] = {}

    @classmethod
    def only(cls, dialect: str, text: str) -> "Sql":
        """A statement written for `dialect` alone."""
        statement = cls(text)
        statement._texts = {other: text if other == dialect else None for other in statement._texts}
        if dialect not in statement._texts:
            raise ValueError(f"unknown dialect {dialect!r}")
        return statement

    @classmethod
    def each(cls, build: Callable[[str], str]) -> "Sql":
        """A statement whose text differs by engine in parts: `build(dialect)` writes it."""
        return cls(sqlite=build("sqlite"), postgresql=build("postgresql"))

    def text(self, dialect: str) -> str:
        text = self._texts[dialect]
        if text is None:
            raise ValueError(f"this statement is not written for {dialect}: {self!r}")
        return text

    def compiled(self, dialect: str) -> tuple[str, tuple[str, ...]]:
        """SQLite keeps `:name`; PostgreSQL (asyncpg) gets `$1..` and the names in order."""
        found = self._compiled.get(dialect)
        if found is None:
            found = self._compile(dialect)
            self._compiled[dialect] = found
        return found

    def _compile(self, dialect: str) -> tuple[str, tuple[str, ...]]:
        text = self.text(dialect)
        if dialect == "sqlite":
            return text, ()
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            if match.group(1) is None:
                return match.group(0)
            if match.group(1) not in names:
                names.append(match.group(1))
            return f"${names.index(match.group(1)) + 1}"

        return _PLACEHOLDER.sub(number, text), tuple(names)

    def __repr__(self) -> str:
        text = self._texts["sqlite"] or self._texts["postgresql"] or ""
        return f"Sql({text[:60]!r}...)"


class Connection:
    """What a unit of work gets, inside its transaction. Rows are dicts keyed by column;
    timestamps in and out are aware UTC datetimes on both engines."""

    dialect: str
    # False only while a `one_statement_on_postgresql` unit runs without BEGIN/COMMIT on
    # PostgreSQL: its statement then commits by itself (see `NeedsTransaction`).
    in_transaction: bool = True

    async def execute(self, sql: Sql, params: Mapping[str, Any] | None = None) -> int:
        """Runs a statement; returns how many rows it changed."""
        raise NotImplementedError

    async def fetch_one(
        self, sql: Sql, params: Mapping[str, Any] | None = None
    ) -> dict[str, Any] | None:
        raise NotImplementedError

    async def fetch_all(
        self, sql: Sql, params: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def fetch_value(self, sql: Sql, params: Mapping[str, Any] | None = None) -> Any:
        """The first column of the first row, or None without a row."""
        row = await self.fetch_one(sql, params)
        return None if row is None else next(iter(row.values()))


class UniqueViolation(Exception):
    """A unique constraint refused a write (both engines); `constraint` names it if known."""

    def __init__(self, constraint: str | None = None) -> None:
        super().__init__(f"unique constraint violated: {constraint or 'unknown'}")
        self.constraint = constraint


class RaceLost(Exception):
    """The unit lost a race it cannot settle inside its transaction (another transaction
    committed what it was about to write): the seam rolls back and runs it again."""


class NeedsTransaction(Exception):
    """Raised by a `one_statement_on_postgresql` unit whose statement could not do this call's
    work alone (and changed nothing): the seam runs the unit again inside a transaction, where
    `conn.in_transaction` is true and it may take several statements (an order that crosses a
    product's stock threshold records its stock events there, app/orders.py)."""


class DatabaseError(Exception):
    """A driver error the service did not expect, with the driver's code and class but never
    the statement's parameters (the original exception is not chained: it may carry them)."""


class ClientGone(ApiError):
    """The client disconnected before COMMIT: the unit was rolled back instead (499)."""

    def __init__(self) -> None:
        super().__init__(
            "client_closed_request",
            "The client disconnected before the change was committed; nothing was changed.",
        )


def insufficient_storage() -> ApiError:
    return ApiError(
        "insufficient_storage",
        "The database's disk is full; nothing was changed.",
    )


def database_read_only() -> ApiError:
    return ApiError(
        "database_read_only",
        "The database refuses writes right now; nothing was changed.",
        headers={"Retry-After": "5"},
    )


def statement_too_slow() -> ApiError:
    return database_unavailable("The database did not answer within its time budget.")


# One line per storage failure kind and cause per interval, so an outage does not flood the log.
_LOG_EVERY_SECONDS = 10.0
_last_logged: dict[tuple[str, str], float] = {}


# Told of every storage error the drivers meet, by its code: readiness listens (main.py wires
# it), so /readyz says so too for a while. The seam never imports what listens to it.
_storage_error_listeners: list[Callable[[str], None]] = []


def on_storage_error(listener: Callable[[str], None]) -> None:
    """Call `listener(code)` on each storage error from now on (once, however often asked)."""
    if listener not in _storage_error_listeners:
        _storage_error_listeners.append(listener)


def log_storage_error(code: str, cause: str) -> None:
    for listener in _storage_error_listeners:
        listener(code)
    now = time.monotonic()
    key = (code, cause)
    if now - _last_logged.get(key, -_LOG_EVERY_SECONDS) >= _LOG_EVERY_SECONDS:
        _last_logged[key] = now
        log.warning("database refused the work: %s", code, extra={"code": code, "cause": cause})


def gone() -> bool:
    """Whether the request's client has disconnected (logged: the unit is rolled back)."""
    check = client_gone.get()
    if check is not None and check():
        log.info("rolled back: the client disconnected before COMMIT")
        return True
    return False


def timestamp_text(column: str, dialect: str) -> str:
    """SQL for a timestamp column as the API writes times (`2026-11-27T09:00:00Z`), made by the
    database: a view's rows then need no datetime built only to be formatted again (about a tenth of
    a list's cost, bench/README.md "Timestamps and money made by the database"). NULL stays NULL."""
    if dialect == "sqlite":
        # The stored text is UTC as `YYYY-MM-DD HH:MM:SS.ffffff` (app/db/sqlite.py writes it so,
        # as SQLAlchemy does): cutting it is a third cheaper than strftime's parse per value.
        return f"substr({column}, 1, 10) || 'T' || substr({column}, 12, 8) || 'Z'"
    return f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"


def money_text_sql(cents: str, dialect: str) -> str:
    """SQL for cents as the API writes money (`money_text`): `"19.90"`, made by the database."""
    if dialect == "sqlite":
        return (
            f"CASE WHEN {cents} < 0 THEN '-' ELSE '' END "
            f"|| printf('%d.%02d', abs({cents}) / 100, abs({cents}) % 100)"
        )
    return f"CAST(CAST(CAST({cents} AS numeric) / 100 AS numeric(20, 2)) AS text)"


Unit = Callable[Concatenate[Connection, P], Awaitable[R]]
U = TypeVar("U", bound=Callable[..., Any])


def one_statement_on_postgresql(unit: U) -> U:
    """Marks a unit whose work on PostgreSQL is one statement, all or nothing by itself, before
    which it only reads and after which it only builds its answer: `write` then runs it without
    BEGIN and COMMIT, two of an order's four round trips (bench/README.md "Round trips on
    PostgreSQL"). Called inside another unit, it joins that unit's transaction as any rule does.
    When its statement cannot serve a call alone it raises `NeedsTransaction` (having changed
    nothing) and runs again in a transaction, with `conn.in_transaction` true."""
    unit.one_statement_on_postgresql = True  # type: ignore[attr-defined]
    return unit


def runs_as_one_statement(unit: Any) -> bool:
    return getattr(unit, "one_statement_on_postgresql", False) is True


class Database:
    """Runs units of work; one subclass per engine (app/db/sqlite.py, app/db/postgresql.py)."""

    dialect: str
    # The URL without its password, for the start-up log.
    display_url: str

    async def read(self, unit: Unit[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """A unit that only reads; each statement sees the latest committed state."""
        raise NotImplementedError

    async def scan(self, unit: Unit[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """A read whose statements cost O(rows) (a count, a large offset, a substring scan):
        on SQLite it runs in a database thread so the event loop keeps serving."""
        return await self.read(unit, *args, **kwargs)

    async def write(self, unit: Unit[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """A unit in one write transaction: committed at the end, rolled back on any exception
        (an ApiError included) and re-raised; retried when it lost a race. On PostgreSQL, a unit
        marked `one_statement_on_postgresql` is its own transaction instead."""
        raise NotImplementedError

    def snapshot(self) -> AbstractAsyncContextManager[Connection]:
        """`async with database.snapshot() as conn:` a read transaction that sees one state of
        the database throughout, for reads that await between their statements (an export
        streamed to a slow client, app/catalog.py). SQLite: a connection of its own in a read
        transaction (WAL keeps its snapshot while writers commit); PostgreSQL: REPEATABLE READ,
        READ ONLY, on a connection of the pool. Statements are to be short (keyset batches)."""
        raise NotImplementedError

    async def ping(self) -> None:
        """SELECT 1, for readiness: raises an ApiError when the database does not answer."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError
