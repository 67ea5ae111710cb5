"""Alembic's entry point: migrates the database named by the service's own settings."""

import logging

from alembic import context
from sqlalchemy import Connection

from app.core.config import Settings
from app.db.connect import create_db_engine
from app.tables import SQLModel

config = context.config
target_metadata = SQLModel.metadata
log = logging.getLogger("alembic.env")


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=target_metadata,
        compare_type=True,
        # SQLite alters tables by copying them; Alembic's batch mode does that for us.
        render_as_batch=True,
        **kwargs,
    )


def run_migrations_offline() -> None:
    _configure(
        url=Settings().database_url, literal_binds=True, dialect_opts={"paramstyle": "named"}
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_with(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    # A caller (the tests) may hand over its own connection.
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_with(connection)
        return
    engine = create_db_engine(Settings())
    with engine.connect() as connection:
        _run_with(connection)
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
