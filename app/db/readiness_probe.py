"""What readiness asks the database: does it answer, at which schema revision, can it write.

The one place the probes touch the database. A check is one read unit of three short
statements, run every READINESS_INTERVAL_SECONDS by the background check (never per request);
on SQLite a read runs on the event loop and takes no writer turn, on PostgreSQL it takes a
pooled connection, which admission keeps from being all taken for long.
"""

import os
from dataclasses import dataclass

from app.db.base import Connection, Database, Sql

_HAS_ALEMBIC = Sql(
    sqlite="SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'",
    postgresql="SELECT count(*) FROM pg_catalog.pg_tables "
    "WHERE tablename = 'alembic_version' AND schemaname = current_schema()",
)
_REVISIONS = Sql("SELECT version_num FROM alembic_version")
# A read unit runs outside an explicit transaction: this is the server's or session's default.
_PG_READ_ONLY = Sql("SELECT current_setting('transaction_read_only') = 'on' OR pg_is_in_recovery()")


# What one check found; `storage` is an error code, or None when the database can write.
@dataclass(frozen=True)
class DatabaseState:
    revisions: frozenset[str]
    storage: str | None


async def _inspect(conn: Connection) -> tuple[frozenset[str], bool]:
    revisions: frozenset[str] = frozenset()
    if await conn.fetch_value(_HAS_ALEMBIC):
        revisions = frozenset(row["version_num"] for row in await conn.fetch_all(_REVISIONS))
    read_only = conn.dialect == "postgresql" and bool(await conn.fetch_value(_PG_READ_ONLY))
    return revisions, read_only


def _sqlite_storage(path: str, min_free_bytes: int) -> str | None:
    folder = os.path.dirname(os.path.abspath(path))
    stats = os.statvfs(folder)
    if stats.f_flag & os.ST_RDONLY or not os.access(folder, os.W_OK):
        return "database_read_only"
    if os.path.exists(path) and not os.access(path, os.W_OK):
        return "database_read_only"
    if stats.f_bavail * stats.f_frsize < min_free_bytes:
        return "insufficient_storage"
    return None


async def check(database: Database, min_free_bytes: int) -> DatabaseState:
    revisions, read_only = await database.read(_inspect)
    storage = "database_read_only" if read_only else None
    path = getattr(database, "path", None)
    if storage is None and path and not getattr(database, "in_memory", False):
        storage = _sqlite_storage(path, min_free_bytes)
    return DatabaseState(revisions, storage)
