"""The shop's currency (CURRENCY): shown on every product and order, refused when a request
names another, and only a currency with two decimal places."""

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError
from sqlalchemy import Engine

from app.core import currencies
from app.core.config import Settings
from app.main import create_app
from tests.support.serving import serving
from tests.support.webhooks import SECRET, deliver, event_body


@pytest.fixture
def euro_client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    configured = settings.model_copy(
        update={"currency": "EUR", "webhook_secret": SecretStr(SECRET)}
    )
    with serving(create_app(configured, engine)) as client:
        yield client
    currencies.use(currencies.DEFAULT)  # the process's shop again, for the tests after


def place(client: TestClient, **extra: object):
    product = client.post(
        "/products", json={"sku": "CUP-1", "name": "Cup", "price": "4.50", "stock": 5}
    ).json()
    return product, client.post(
        "/orders", json={"product_id": product["id"], "quantity": 2, **extra}
    )


def test_products_and_orders_show_the_default_currency_everywhere(client: TestClient):
    product, placed = place(client)

    assert product["currency"] == "USD" and placed.json()["currency"] == "USD"
    order_id = placed.json()["id"]
    assert client.get(f"/products/{product['id']}").json()["currency"] == "USD"
    assert {p["currency"] for p in client.get("/products").json()["items"]} == {"USD"}
    assert client.get(f"/orders/{order_id}").json()["currency"] == "USD"
    assert {o["currency"] for o in client.get("/orders").json()["items"]} == {"USD"}
    assert client.delete(f"/orders/{order_id}").json()["currency"] == "USD"


def test_the_configured_currency_is_shown_and_is_the_only_one_taken(euro_client, db):
    product, placed = place(euro_client, currency="eur")
    [created] = db.rows("SELECT data FROM events WHERE type = 'order.created'")
    data = created["data"] if isinstance(created["data"], dict) else json.loads(created["data"])
    assert data["order"]["currency"] == "EUR"  # on PostgreSQL, written by the database

    assert placed.status_code == 201, placed.text
    assert product["currency"] == "EUR" and placed.json()["currency"] == "EUR"
    listed = euro_client.get("/products").json()["items"]
    assert {p["currency"] for p in listed} == {"EUR"}
    refused = euro_client.post(
        "/orders", json={"product_id": product["id"], "quantity": 1, "currency": "USD"}
    )
    assert refused.status_code == 422 and refused.json()["code"] == "currency_mismatch"
    assert refused.json()["currency"] == "USD" and refused.json()["shop_currency"] == "EUR"


def test_an_order_in_another_currency_is_422_and_takes_no_stock(client: TestClient):
    product, refused = place(client, currency="EUR")

    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "currency_mismatch"
    assert client.get(f"/products/{product['id']}").json()["stock"] == 5
    assert client.get("/orders").json()["total"] == 0


@pytest.mark.parametrize("currency", ["usd", "USD", "Usd"])
def test_the_shops_currency_is_taken_in_any_case(client: TestClient, currency: str):
    _, placed = place(client, currency=currency)
    assert placed.status_code == 201 and placed.json()["currency"] == "USD"


@pytest.mark.parametrize("currency", ["US", "USDX", "12A", "", None])
def test_a_currency_that_is_not_three_letters_is_a_validation_error(client, currency):
    _, placed = place(client, currency=currency) if currency is not None else (None, None)
    if placed is None:  # null: the same as not sent
        _, placed = place(client)
        assert placed.status_code == 201
        return
    assert placed.status_code == 422 and placed.json()["code"] == "validation_error"


def test_the_same_idempotency_key_with_and_without_the_currency_is_one_order(client):
    product = client.post(
        "/products", json={"sku": "CUP-2", "name": "Cup", "price": "4.50", "stock": 5}
    ).json()
    line = {"product_id": product["id"], "quantity": 1}
    key = {"Idempotency-Key": "order-with-currency"}
    first = client.post("/orders", json=line, headers=key)
    again = client.post("/orders", json={**line, "currency": "USD"}, headers=key)
    assert first.status_code == 201 and again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.headers.get("Idempotent-Replayed") == "true"


def test_a_payment_in_another_currency_is_422_and_records_nothing(euro_client, db):
    from tests.support.factories import Record
    from tests.support.webhooks import order_status, payment_events

    _, placed = place(euro_client)
    order = Record(placed.json())

    wrong = deliver(euro_client, event_body(order, currency="USD"))
    assert wrong.status_code == 422 and wrong.json()["code"] == "currency_mismatch"
    assert payment_events(db) == [] and order_status(db, order.id) == "PENDING"
    right = deliver(euro_client, event_body(order, currency="eur"))
    assert right.status_code == 200 and order_status(db, order.id) == "PAID"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("JPY", "JPY has 0 decimal places"),
        ("KWD", "KWD has 3 decimal places"),
        ("MGA", "MGA has 0 decimal places"),
        ("XYZ", "not an ISO 4217 currency code"),
    ],
)
def test_a_currency_without_two_decimal_places_is_refused_at_start(value, message):
    with pytest.raises(ValidationError, match=message):
        Settings(_env_file=None, currency=value)


def test_the_currency_setting_is_read_in_any_case(monkeypatch):
    monkeypatch.setenv("CURRENCY", "gbp")
    assert Settings(_env_file=None).currency == "GBP"
    assert Settings(_env_file=None, currency=" chf ").currency == "CHF"
