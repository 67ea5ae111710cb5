"""Readiness and the schema check, on both engines: an unmigrated or older database is named in
one ERROR line and answered 503 `schema_out_of_date` until migrated; /readyz turns 503 for a
full disk or a read-only database; an outage's warnings are rate-limited."""

import logging
import time
from collections.abc import Iterator

import pytest
from alembic import command
from alembic.config import Config
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from app.core.config import Settings
from app.db import readiness
from app.db.connect import create_db_engine
from app.main import create_app
from tests.support.factories import product_body
from tests.support.live_server import ROOT
from tests.support.serving import serving

FAST = {"readiness_interval_seconds": 0.1}


def migrate(engine: Engine, revision: str) -> None:
    config = Config(toml_file=str(ROOT / "pyproject.toml"))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


@pytest.fixture
def bare_engine(settings: Settings) -> Iterator[Engine]:
    """An engine on a database with nothing in it yet."""
    engine = create_db_engine(settings)
    yield engine
    engine.dispose()


def wait_ready(client: TestClient, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, client.get("/readyz").json()
        time.sleep(0.05)


def assert_schema_out_of_date(response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "schema_out_of_date"
    assert "./run.sh migrate" in response.json()["detail"]


@pytest.mark.parametrize("revision", [None, "0002"], ids=["empty", "older"])
def test_a_database_behind_the_head_is_named_and_refused_until_migrated(
    settings: Settings, bare_engine: Engine, caplog, revision: str | None
) -> None:
    if revision is not None:
        migrate(bare_engine, revision)
    app = create_app(settings.model_copy(update=FAST), bare_engine)
    with caplog.at_level(logging.INFO), serving(app) as client:
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1, [r.getMessage() for r in errors]
        assert "./run.sh migrate" in errors[0].getMessage()
        assert ("no schema" if revision is None else "revision 0002") in errors[0].getMessage()

        assert_schema_out_of_date(client.get("/products"))
        assert_schema_out_of_date(client.post("/orders", json={"product_id": 1, "quantity": 1}))
        assert_schema_out_of_date(client.get("/readyz"))
        assert client.get("/healthz").status_code == 200
        assert client.get("/docs").status_code == 200

        migrate(bare_engine, "head")
        wait_ready(client)
        assert client.post("/products", json=product_body()).status_code == 201
    assert sum(r.levelno == logging.ERROR for r in caplog.records) == 1, "said once"


def test_a_current_schema_is_ready_with_no_error(settings: Settings, engine: Engine, caplog):
    with caplog.at_level(logging.INFO), serving(create_app(settings, engine)) as client:
        assert client.get("/readyz").json() == {"status": "ok", "database": "ok"}
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_readyz_is_503_when_the_database_cannot_write(
    db_kind: str, settings: Settings, engine: Engine
) -> None:
    if db_kind == "sqlite":
        # More free space required than the disk has: what a full disk looks like to statvfs.
        changed = settings.model_copy(update={**FAST, "min_free_disk_mib": 1 << 40})
        expected = "insufficient_storage"
    else:
        url = make_url(settings.database_url)
        options = url.query["options"] + " -cdefault_transaction_read_only=on"
        read_only = url.update_query_dict({"options": options})
        changed = settings.model_copy(
            update={**FAST, "database_url": read_only.render_as_string(hide_password=False)}
        )
        expected = "database_read_only"
    with serving(create_app(changed)) as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["code"] == expected
        assert client.get("/healthz").status_code == 200


def test_a_storage_error_the_data_layer_reports_makes_readyz_503(
    settings: Settings, engine: Engine, monkeypatch
) -> None:
    monkeypatch.setattr(readiness, "_reported", None)
    with serving(create_app(settings.model_copy(update=FAST), engine)) as client:
        assert client.get("/readyz").status_code == 200
        readiness.report_storage_error("insufficient_storage")
        deadline = time.monotonic() + 5
        while client.get("/readyz").status_code == 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert client.get("/readyz").json()["code"] == "insufficient_storage"


def test_an_outage_warns_once_per_interval_not_once_per_request(caplog) -> None:
    settings = Settings(
        _env_file=None,
        database_url="postgresql://nobody@127.0.0.1:9/none",
        db_pool_timeout_seconds=1,
    )
    with caplog.at_level(logging.WARNING), serving(create_app(settings)) as client:
        statuses = {client.get("/products").status_code for _ in range(20)}
        assert client.get("/readyz").json()["code"] == "database_unavailable"
    assert statuses == {503}
    warnings = [r for r in caplog.records if "database unavailable" in r.getMessage()]
    assert len(warnings) <= 1, len(warnings)
