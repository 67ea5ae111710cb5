"""Opening the database the settings name, and handing it to the routes.

`create_database` picks the driver for the URL (app/db/sqlite.py or app/db/postgresql.py);
`create_db_engine` is the SQLAlchemy engine Alembic and the tests use (never the request
path); `DatabaseDep` and `database_of` give a route the app's `Database` (app/db/base.py).
"""

from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from app.core.config import Settings
from app.db.base import Database
from app.db.postgresql import PostgresDatabase
from app.db.sqlite import SqliteDatabase, install_functions, open_connection


def create_database(settings: Settings, engine: Engine | None = None) -> Database:
    """The driver the URL names. `engine`: an in-memory SQLite engine whose connection (and so
    whose tables) the database shares, for tests; otherwise unused (files and servers are shared
    through their URL)."""
    if settings.is_sqlite:
        return SqliteDatabase.from_settings(settings, engine)
    return PostgresDatabase.from_settings(settings)


def create_db_engine(settings: Settings) -> Engine:
    """A SQLAlchemy engine for Alembic and tests (never on the request path): parameters are
    never rendered into its errors or logs."""
    url = make_url(settings.database_url)
    if not settings.is_sqlite:
        return create_engine(url, pool_pre_ping=True, hide_parameters=True)
    file = url.database or ""
    in_memory = file in ("", ":memory:")
    if not in_memory:
        Path(file).parent.mkdir(parents=True, exist_ok=True)
    if in_memory:
        # One shared connection keeps an in-memory database alive for the engine's life, and
        # the service's database (create_database with this engine) uses that same connection.
        engine = create_engine(
            url,
            hide_parameters=True,
            creator=lambda: open_connection(":memory:", in_memory=True),
            poolclass=StaticPool,
            native_datetime=True,
        )
    else:
        engine = create_engine(url, hide_parameters=True)

    @event.listens_for(engine, "connect")
    def configure_connection(dbapi_connection: Any, _record: Any) -> None:
        # Hand BEGIN to SQLAlchemy (see `begin` below) instead of the driver's implicit one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(settings.sqlite_busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
        install_functions(dbapi_connection)

    @event.listens_for(engine, "begin")
    def begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN")

    return engine


async def get_database(request: Request) -> Database:
    return request.app.state.database  # type: ignore[no-any-return]


def database_of(request: Request) -> Database:
    """The app's database, for the hot routes: they take `request: Request` instead of
    `DatabaseDep`, since FastAPI solving a sub-dependency per request costs ~10 µs
    (bench/README.md "Framework calls per request")."""
    return request.app.state.database  # type: ignore[no-any-return]


# Routes take this and `await database.read(rule, ...)` / `database.write(rule, ...)`.
DatabaseDep = Annotated[Database, Depends(get_database)]
