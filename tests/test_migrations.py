"""Alembic owns the schema: the migrations build exactly what the models describe."""

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect

from app.config import Settings
from app.database import create_db_engine
from app.tables import SQLModel
from tests.databases import database_url

ROOT = Path(__file__).resolve().parent.parent


def upgrade(connection: Connection, revision: str = "head") -> Config:
    config = Config(toml_file=str(ROOT / "pyproject.toml"))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)
    return config


def test_migrations_match_the_models(db_kind: str, tmp_path: Path):
    with database_url(db_kind, tmp_path) as url:
        engine = create_db_engine(Settings(_env_file=None, database_url=url))
        with engine.begin() as connection:
            upgrade(connection)
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
            tables = set(inspect(connection).get_table_names())
        engine.dispose()

    assert diff == []
    assert {"products", "orders", "order_lines", "idempotency_keys"} <= tables


def test_migrations_downgrade_to_nothing_and_back(db_kind: str, tmp_path: Path):
    with database_url(db_kind, tmp_path) as url:
        engine = create_db_engine(Settings(_env_file=None, database_url=url))
        with engine.begin() as connection:
            config = upgrade(connection)
            command.downgrade(config, "base")
            assert set(inspect(connection).get_table_names()) <= {"alembic_version"}
            upgrade(connection)
            assert "products" in inspect(connection).get_table_names()
        engine.dispose()
