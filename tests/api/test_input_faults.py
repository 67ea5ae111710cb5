"""Hostile and malformed input on the resource routes: refused with a clear 4xx before the
database, never a 500, never a partial write (both engines)."""

import json

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from app.core import cursors
from app.core.config import Settings
from app.db.base import ClientGone
from app.http import client_disconnect
from app.main import create_app
from tests.support.factories import Db, orders_in_db, product_body


def post_raw(client: TestClient, path: str, body: str, method: str = "POST"):
    return client.request(method, path, content=body, headers={"content-type": "application/json"})


def test_duplicate_keys_in_a_product_body_are_400_and_store_nothing(client, db: Db):
    response = post_raw(
        client,
        "/products",
        '{"sku": "DUP-1", "name": "Mug", "price": "1.00", "stock": 1, "stock": 500}',
    )
    assert response.status_code == 400 and response.json()["code"] == "bad_request"
    assert db.value("SELECT count(*) FROM products") == 0


def test_duplicate_keys_anywhere_in_an_order_body_are_400(client, db: Db):
    product = client.post("/products", json=product_body(stock=5)).json()
    pid = product["id"]
    nested = f'{{"items": [{{"product_id": {pid}, "quantity": 1, "quantity": 4}}]}}'
    response = post_raw(client, "/orders", nested)
    assert response.status_code == 400 and response.json()["code"] == "bad_request"
    patched = post_raw(client, f"/products/{pid}", '{"name": "A", "name": "B"}', "PATCH")
    assert patched.status_code == 400
    assert orders_in_db(db) == 0
    assert client.get(f"/products/{pid}").json()["name"] == product["name"]


@pytest.mark.parametrize(
    "field",
    [
        {"name": "Mug\u0000"},
        {"description": "nul \u0000 inside"},
        {"name": "lone \ud800 surrogate"},
        {"description": "\udfff"},
    ],
)
def test_text_the_database_cannot_store_is_422_on_create_and_update(client, db: Db, field):
    # json.dumps escapes as \u0000 and \ud800, as a client's JSON would.
    created = post_raw(client, "/products", json.dumps(product_body(**field)))
    assert created.status_code == 422 and created.json()["code"] == "validation_error"
    product = client.post("/products", json=product_body()).json()
    updated = post_raw(client, f"/products/{product['id']}", json.dumps(field), "PATCH")
    assert updated.status_code == 422
    assert db.value("SELECT count(*) FROM products") == 1


def test_nul_in_a_query_parameter_is_422(client):
    assert client.get("/products", params={"q": "a\u0000b"}).status_code == 422
    assert client.get("/products", params={"sku": "a\u0000b"}).status_code == 422


@pytest.mark.parametrize(
    "after",
    [
        "not-a-cursor",
        "!!!!",
        cursors.encode("orders", 5),
        cursors.encode("products", 0),
        cursors.encode("products", "x"),
        cursors.encode("products", 2**40),
    ],
)
def test_a_malformed_or_foreign_cursor_is_422_invalid_cursor(client, after):
    response = client.get("/products", params={"after": after})
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_cursor"


def test_after_and_offset_at_once_are_422(client):
    after = cursors.encode("orders", 5)
    response = client.get("/orders", params={"after": after, "offset": 0})
    assert response.status_code == 422 and response.json()["code"] == "validation_error"
    assert response.json()["errors"][0]["loc"] == ["query", "after"]


def test_idempotency_keys_are_scoped_by_the_callers_principal(settings: Settings, engine, db):
    """The request path puts the API key's principal in the scope's state; two principals with
    one Idempotency-Key get two orders, and each its own replay."""
    alice, bob = "alice-key-0123456789abcdef", "bob-key-0123456789abcdef0"
    app = create_app(
        settings.model_copy(update={"api_keys": [SecretStr(alice), SecretStr(bob)]}), engine
    )
    client = TestClient(app)
    keys = iter([alice, bob, alice, bob])
    product = client.post(
        "/products", json=product_body(stock=10), headers={"X-API-Key": alice}
    ).json()
    body = {"product_id": product["id"], "quantity": 1}

    def headers() -> dict[str, str]:
        return {"Idempotency-Key": "shared-key", "X-API-Key": next(keys)}

    answers = [client.post("/orders", json=body, headers=headers()) for _ in range(4)]

    assert [a.status_code for a in answers] == [201] * 4
    assert answers[0].json()["id"] != answers[1].json()["id"]
    assert [a.headers.get("idempotent-replayed") for a in answers] == [None, None, "true", "true"]
    assert answers[2].json() == answers[0].json() and answers[3].json() == answers[1].json()
    assert orders_in_db(db) == 2


def test_a_client_gone_before_commit_is_answered_499_and_nothing_is_stored(
    client, db: Db, monkeypatch
):

    def leaves_after_admission(_receive):  # here when its work starts, gone by COMMIT
        calls = iter([False])
        return lambda: next(calls, True)

    monkeypatch.setattr(client_disconnect, "probe", leaves_after_admission)
    response = client.post("/products", json=product_body())
    assert response.status_code == 499 and response.json()["code"] == ClientGone().code
    assert db.value("SELECT count(*) FROM products") == 0


@pytest.mark.parametrize("after", ["", "A" * 201, cursors.encode("products", 1) + "A" * 190])
@pytest.mark.parametrize("path", ["/products", "/orders", "/products/{id}/stock-movements"])
def test_an_empty_or_overlong_cursor_is_422_invalid_cursor(client, path: str, after: str):
    """Like any cursor no list issued: not `validation_error`, and never the first page."""
    product = client.post("/products", json=product_body()).json()

    response = client.get(path.format(id=product["id"]), params={"after": after})

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_cursor"


def test_every_route_that_reads_a_json_body_refuses_duplicate_keys():
    """One rule for every JSON body: each API route is a StrictJsonRoute (the webhooks, which
    verify the raw bytes first, parse with the same `loads_strict`)."""
    from fastapi.routing import APIRoute

    from app.http.json_payloads import StrictJsonRoute

    app = create_app(Settings(_env_file=None, app_env="test", database_url="sqlite://"))
    with_bodies = [
        route
        for route in app.routes
        if isinstance(route, APIRoute) and route.body_field is not None
    ]

    assert with_bodies
    assert [r.path for r in with_bodies if not isinstance(r, StrictJsonRoute)] == []
