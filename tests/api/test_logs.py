"""JSON logs: one line per request and per business event, carrying the request id, no secrets."""

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlmodel import SQLModel

from app.core.config import Settings
from app.db.connect import create_db_engine
from app.main import create_app
from tests.support.databases import stamp_head

KEY = "log-test-key-6d1f0c2b9e"


@pytest.fixture
def keyed_client(request: pytest.FixtureRequest) -> Iterator[TestClient]:
    level = getattr(request, "param", "INFO")
    settings = Settings(
        _env_file=None, app_env="test", database_url="sqlite://", api_keys=KEY, log_level=level
    )
    engine = create_db_engine(settings)
    SQLModel.metadata.create_all(engine)
    stamp_head(engine)
    # Not entered: the lifespan's background chores would share the in-memory database.
    yield TestClient(create_app(settings, engine), headers={"X-API-Key": KEY})


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_each_request_logs_one_json_line_with_its_fields(keyed_client: TestClient, capsys):
    capsys.readouterr()
    keyed_client.get("/products/42", headers={"X-Request-ID": "req-log-1"})

    err = capsys.readouterr().err
    lines = [line for line in json_lines(err) if line.get("request_id") == "req-log-1"]
    assert len(lines) == 1, err
    line = lines[0]
    assert line["logger"] == "app.access" and line["level"] == "INFO"
    assert (line["method"], line["route"], line["path"], line["status"], line["code"]) == (
        "GET",
        "/products/{product_id}",
        "/products/42",
        404,
        "product_not_found",
    )
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["timestamp"].endswith("+00:00")
    assert KEY not in err


def test_business_events_carry_the_request_id(keyed_client: TestClient, capsys):
    product = keyed_client.post(
        "/products", json={"sku": "EV-1", "name": "Mug", "price": "4.00", "stock": 3}
    ).json()
    capsys.readouterr()
    order = keyed_client.post(
        "/orders",
        json={"product_id": product["id"], "quantity": 2},
        headers={"X-Request-ID": "req-place"},
    ).json()
    keyed_client.delete(f"/orders/{order['id']}", headers={"X-Request-ID": "req-cancel"})

    events = {
        line["event"]: line for line in json_lines(capsys.readouterr().err) if "event" in line
    }
    assert events["order_placed"]["request_id"] == "req-place"
    assert events["order_placed"]["order_id"] == order["id"]
    assert events["order_placed"]["total_cents"] == 800
    assert events["order_canceled"]["request_id"] == "req-cancel"
    assert events["order_canceled"]["previous"] == "PENDING"


def test_a_refused_key_is_not_logged(keyed_client: TestClient, capsys):
    capsys.readouterr()
    wrong = "wrong-key-that-must-not-be-logged"
    response = keyed_client.get(
        "/products", headers={"X-API-Key": wrong, "X-Request-ID": "req-bad-key"}
    )
    assert response.status_code == 401
    err = capsys.readouterr().err
    [line] = [line for line in json_lines(err) if line.get("request_id") == "req-bad-key"]
    assert (line["status"], line["code"], line["route"]) == (401, "unauthorized", "/products")
    assert wrong not in err and KEY not in err


@pytest.mark.parametrize("keyed_client", ["WARNING"], indirect=True)
def test_log_level_warning_drops_request_lines(keyed_client: TestClient, capsys):
    capsys.readouterr()
    keyed_client.get("/products", headers={"X-Request-ID": "req-quiet"})
    assert not [
        line
        for line in json_lines(capsys.readouterr().err)
        if line.get("request_id") == "req-quiet"
    ]
