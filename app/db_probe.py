"""What readiness asks the database: does it answer, at which schema revision, can it write.

The one place the probes touch the database. A check is one short read through the seam
(`Database.read`: on SQLite a read never waits for the writer, on PostgreSQL it takes a pooled
connection), run every READINESS_INTERVAL_SECONDS in the background and never per request;
app/readiness.py bounds how long it may take.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.database import Connection, Database, Sql

ALEMBIC_TABLE = "alembic_version"
_HAS_ALEMBIC_TABLE = Sql(
    sqlite=f"SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '{ALEMBIC_TABLE}'",
    postgresql=f"SELECT count(*) FROM pg_tables WHERE tablename = '{ALEMBIC_TABLE}' "
    "AND schemaname = current_schema()",
)
_REVISIONS = Sql(f"SELECT version_num FROM {ALEMBIC_TABLE}")
_PG_READ_ONLY = Sql(
    "SELECT current_setting('transaction_read_only') = 'on' OR pg_is_in_recovery() AS read_only"
)


# What one check found; `storage` is an error code, or None when the database can write.
@dataclass(frozen=True)
class DatabaseState:
    revisions: frozenset[str]
    storage: str | None


def _sqlite_storage(path: str, min_free_bytes: int) -> str | None:
    if path in ("", ":memory:") or path.startswith("file:"):
        return None
    file = Path(path)
    folder = file.parent
    stats = os.statvfs(folder)
    if stats.f_flag & os.ST_RDONLY or not os.access(folder, os.W_OK):
        return "database_read_only"
    if file.exists() and not os.access(file, os.W_OK):
        return "database_read_only"
    if stats.f_bavail * stats.f_frsize < min_free_bytes:
        return "insufficient_storage"
    return None


async def _state(conn: Connection) -> tuple[frozenset[str], bool]:
    revisions: frozenset[str] = frozenset()
    if await conn.fetch_value(_HAS_ALEMBIC_TABLE):
        revisions = frozenset(row["version_num"] for row in await conn.fetch_all(_REVISIONS))
    read_only = conn.dialect == "postgresql" and bool(await conn.fetch_value(_PG_READ_ONLY))
    return revisions, read_only


async def check(database: Database, min_free_bytes: int) -> DatabaseState:
    revisions, read_only = await database.read(_state)
    storage: str | None = "database_read_only" if read_only else None
    path: Any = getattr(database, "path", None)
    if storage is None and database.dialect == "sqlite" and isinstance(path, str):
        storage = _sqlite_storage(path, min_free_bytes)
    return DatabaseState(revisions, storage)
