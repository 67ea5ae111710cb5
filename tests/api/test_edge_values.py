"""Values at the edges of what a client may send, each answered with a result or a 4xx problem,
never a 500 (both engines unless said)."""

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from app.core.config import Settings
from app.main import create_app
from tests.support.factories import Db, product_body
from tests.support.webhooks import SECRET, deliver, payment_events

EARLIEST = "0001-01-01T00:00:00+01:00"  # before 0001-01-01 in UTC
LATEST = "9999-12-31T23:30:00-01:00"  # past 9999-12-31 in UTC


def order_ids(client, **params: str) -> list[int]:
    response = client.get("/orders", params=params)
    assert response.status_code == 200, response.text
    return [order["id"] for order in response.json()["items"]]


@pytest.mark.parametrize("moment", [EARLIEST, LATEST, "0001-01-01T00:00:00Z"])
def test_created_filters_at_the_ends_of_the_calendar_work(client, moment):
    product = client.post("/products", json=product_body(stock=5)).json()
    order = client.post("/orders", json={"product_id": product["id"], "quantity": 1}).json()
    early = moment != LATEST

    assert order_ids(client, created_after=moment) == ([order["id"]] if early else [])
    assert order_ids(client, created_before=moment) == ([] if early else [order["id"]])


@pytest.mark.parametrize("depth", [1_000, 30_000])
def test_a_signed_webhook_body_nested_too_deep_is_400(settings: Settings, engine, db: Db, depth):
    configured = settings.model_copy(update={"webhook_secret": SecretStr(SECRET)})
    client = TestClient(create_app(configured, engine))
    body = ("[" * depth + "]" * depth).encode()

    response = deliver(client, body)

    assert response.status_code == 400, response.text
    assert response.json()["code"] == "bad_request"
    assert payment_events(db) == []


def test_a_resource_body_nested_too_deep_is_400(client, db: Db):
    body = '{"items": ' + "[" * 30_000 + "]" * 30_000 + "}"

    response = client.post("/orders", content=body, headers={"content-type": "application/json"})

    assert response.status_code == 400, response.text
    assert response.json()["code"] == "bad_request"
