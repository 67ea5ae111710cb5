"""Fresh, isolated databases for tests: an SQLite file or in-memory database, or a PostgreSQL
schema of its own on the local server."""

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
ENGINES = ("sqlite", "postgresql")


@cache
def _postgres_admin() -> Engine:
    return create_engine(
        POSTGRES_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True, hide_parameters=True
    )


@cache
def postgres_unavailable_reason() -> str | None:
    try:
        with _postgres_admin().connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as error:
        return (
            f"PostgreSQL at {make_url(POSTGRES_URL).render_as_string()} is not answering: "
            f"{str(error.orig).strip().splitlines()[0]}"
        )
    return None


def require_postgres() -> None:
    """Skip on a laptop without PostgreSQL; with CI=true a missing server is a failure."""
    reason = postgres_unavailable_reason()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {reason}")
    pytest.skip(reason)


@contextmanager
def postgres_schema_url() -> Iterator[str]:
    """A database URL whose connections see only a new, empty schema, dropped afterwards.

    Its connections carry the schema's name as their application_name, so that those still
    open when it is dropped (an app whose lifespan never ran never closes its pool) are ended
    with it: left to the garbage collector, they pile up towards PostgreSQL's 100."""
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with _postgres_admin().connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    options = f"-csearch_path={schema} -capplication_name={schema}"
    url = make_url(POSTGRES_URL).update_query_dict({"options": options})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with _postgres_admin().connect() as connection:
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = :schema AND pid <> pg_backend_pid()"
                ),
                {"schema": schema},
            )
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@contextmanager
def database_url(kind: str, tmp_path: Path, *, in_memory: bool = False) -> Iterator[str]:
    if kind == "postgresql":
        with postgres_schema_url() as url:
            yield url
    elif in_memory:
        yield "sqlite://"
    else:
        yield f"sqlite:///{tmp_path / f'orders-{uuid.uuid4().hex[:8]}.db'}"


def stamp_head(engine: Engine) -> None:
    """Record the migration head in a schema made by `create_all`, as `alembic upgrade` does,
    so the service's schema check (app/schema_check.py) finds it current."""
    root = Path(__file__).resolve().parent.parent
    config = Config(toml_file=str(root / "pyproject.toml"))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.stamp(config, "head")
