"""What readiness asks the database: does it answer, at which schema revision, can it write.

The one place the probes touch the database, so a new data layer changes only this module.
Each check runs on a connection of its own in a thread of its own (never in the queue of the
requests' units of work, so a busy service still answers its probes) and costs three short
statements, every READINESS_INTERVAL_SECONDS, never per request.
"""

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.engine import make_url
from sqlmodel import Session

from app.database import Database

ALEMBIC_TABLE = "alembic_version"
_PG_READ_ONLY = text(
    "SELECT current_setting('transaction_read_only') = 'on' OR pg_is_in_recovery()"
)


# What one check found; `storage` is an error code, or None when the database can write.
@dataclass(frozen=True)
class DatabaseState:
    revisions: frozenset[str]
    storage: str | None


def _revisions(connection: Connection) -> frozenset[str]:
    if not inspect(connection).has_table(ALEMBIC_TABLE):
        return frozenset()
    rows = connection.execute(text(f"SELECT version_num FROM {ALEMBIC_TABLE}"))
    return frozenset(row[0] for row in rows)


def _sqlite_storage(engine: Engine, min_free_bytes: int) -> str | None:
    database = make_url(str(engine.url)).database
    if database in (None, "", ":memory:") or database.startswith("file:"):
        return None
    path = Path(database)
    folder = path.parent
    stats = os.statvfs(folder)
    if stats.f_flag & os.ST_RDONLY or not os.access(folder, os.W_OK):
        return "database_read_only"
    if path.exists() and not os.access(path, os.W_OK):
        return "database_read_only"
    if stats.f_bavail * stats.f_frsize < min_free_bytes:
        return "insufficient_storage"
    return None


def _check(connection: Connection, engine: Engine, min_free_bytes: int) -> DatabaseState:
    revisions = _revisions(connection)
    if connection.dialect.name == "postgresql":
        storage = "database_read_only" if connection.execute(_PG_READ_ONLY).scalar() else None
    else:
        storage = _sqlite_storage(engine, min_free_bytes)
    return DatabaseState(revisions, storage)


def _check_own_connection(engine: Engine, min_free_bytes: int) -> DatabaseState:
    with engine.connect() as connection:
        return _check(connection, engine, min_free_bytes)


def _check_in_session(session: Session, min_free_bytes: int) -> DatabaseState:
    connection = session.connection()
    return _check(connection, connection.engine, min_free_bytes)


async def check(database: Database, min_free_bytes: int) -> DatabaseState:
    engine = database.engine
    if engine.url.database in (None, "", ":memory:"):
        # One shared in-memory connection (tests): its own thread would share a transaction.
        return await database.run(_check_in_session, min_free_bytes)
    return await asyncio.to_thread(_check_own_connection, engine, min_free_bytes)
