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

CONFIGURED_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
# Under pytest-xdist each worker makes its schemas in a database of its own beside the
# configured one (test_gw0_<run>, test_gw1_<run>): the advisory locks the service takes for an
# Idempotency-Key are per database, not per schema, so two tests using one key at the same
# time would otherwise see each other's. The run's id in the name keeps two suites running at
# once on one server (two checkouts, say) apart too.
WORKER = os.environ.get("PYTEST_XDIST_WORKER")
RUN = os.environ.get("PYTEST_XDIST_TESTRUNUID", "")[:8]
_configured = make_url(CONFIGURED_URL)
POSTGRES_URL = (
    _configured.set(database=f"{_configured.database}_{WORKER}_{RUN}").render_as_string(False)
    if WORKER
    else CONFIGURED_URL
)
ENGINES = ("sqlite", "postgresql")


def _admin(url: str) -> Engine:
    return create_engine(
        url, isolation_level="AUTOCOMMIT", pool_pre_ping=True, hide_parameters=True
    )


@cache
def _postgres_admin() -> Engine:
    if POSTGRES_URL != CONFIGURED_URL:
        _create_worker_database()
    return _admin(POSTGRES_URL)


def _create_worker_database() -> None:
    name = make_url(POSTGRES_URL).database
    admin = _admin(CONFIGURED_URL)
    try:
        with admin.connect() as connection:
            found = connection.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).scalar()
            if not found:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()


def drop_worker_database() -> None:
    """At the end of a worker's session: its database goes, with any connection left to it."""
    if POSTGRES_URL == CONFIGURED_URL or _postgres_admin.cache_info().currsize == 0:
        return
    _postgres_admin().dispose()
    admin = _admin(CONFIGURED_URL)
    try:
        with admin.connect() as connection:
            name = make_url(POSTGRES_URL).database
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


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
    so the service's schema check (app/db/schema_check.py) finds it current."""
    root = Path(__file__).resolve().parents[2]
    config = Config(toml_file=str(root / "pyproject.toml"))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.stamp(config, "head")
