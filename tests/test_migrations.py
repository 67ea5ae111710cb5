"""Alembic owns the schema: the migrations build exactly what the models describe."""

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from app.config import Settings
from app.database import create_db_engine
from app.models import SQLModel
from tests.databases import database_url

ROOT = Path(__file__).resolve().parent.parent


def alembic_config() -> Config:
    return Config(toml_file=str(ROOT / "pyproject.toml"))


def test_migrations_match_the_models(db_kind: str, tmp_path: Path):
    with database_url(db_kind, tmp_path) as url:
        engine = create_db_engine(Settings(_env_file=None, database_url=url))
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
            tables = set(inspect(connection).get_table_names())
        engine.dispose()

    assert diff == []
    assert {"products", "orders", "order_lines"} <= tables


def test_migrations_downgrade_to_nothing_and_back(db_kind: str, tmp_path: Path):
    with database_url(db_kind, tmp_path) as url:
        engine = create_db_engine(Settings(_env_file=None, database_url=url))
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            command.downgrade(config, "base")
            assert set(inspect(connection).get_table_names()) <= {"alembic_version"}
            command.upgrade(config, "head")
            assert "products" in inspect(connection).get_table_names()
        engine.dispose()
