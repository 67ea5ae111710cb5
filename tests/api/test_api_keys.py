"""API keys: which paths need one, both header forms, rotation, and what a refusal looks like.

The key check runs before routing and before the database, so these tests use one engine
(in-memory SQLite); the protected operations come from the app's own OpenAPI document, so a
route added later is covered without touching this file.
"""

import logging

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlmodel import SQLModel

from app.core.config import Settings
from app.db.connect import create_db_engine
from app.http.api_keys import is_exempt
from app.main import create_app
from tests.support.databases import stamp_head

OLD_KEY = "old-key-3f9a1c7e55d2"
NEW_KEY = "new-key-b81e0d4477aa"


def make_client(**settings: object) -> TestClient:
    """A client of a fresh app; its lifespan (and background chores) are not run."""
    config = Settings(_env_file=None, app_env="test", database_url="sqlite://", **settings)
    engine = create_db_engine(config)
    SQLModel.metadata.create_all(engine)
    stamp_head(engine)
    return TestClient(create_app(config, engine))


@pytest.fixture
def client() -> TestClient:
    return make_client(api_keys=f"{OLD_KEY}, {NEW_KEY}")


def assert_unauthorized(response) -> None:
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["code"] == "unauthorized"
    assert response.headers["x-request-id"] == response.json()["request_id"]


def protected_operations() -> list[tuple[str, str]]:
    paths = make_client(api_keys=OLD_KEY).get("/openapi.json").json()["paths"]
    return [
        (method.upper(), path.replace("{product_id}", "1").replace("{order_id}", "1"))
        for path, operations in paths.items()
        if not is_exempt(path)
        for method in operations
    ]


PROTECTED = protected_operations()
EXEMPT = [
    "/healthz",
    "/readyz",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/openapi.json",
    "/static-offline-docs/swagger-ui-bundle.js",
    "/static-offline-docs/redoc.standalone.js",
]


def test_every_resource_and_metrics_are_protected():
    operations = {(method, path) for method, path in PROTECTED}
    assert {
        ("GET", "/products"),
        ("POST", "/orders"),
        ("DELETE", "/orders/1"),
        ("PATCH", "/products/1"),
        ("GET", "/metrics"),
    } <= operations


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_protected_operation_without_key_is_401(client: TestClient, method: str, path: str):
    assert_unauthorized(client.request(method, path, json={"status": "PAID"}))


@pytest.mark.parametrize("path", EXEMPT)
def test_exempt_path_needs_no_key(client: TestClient, path: str):
    assert client.get(path).status_code == 200


def test_webhook_is_exempt_it_has_its_own_signature(client: TestClient):
    response = client.post("/webhooks/payment", content=b"{}")
    assert (response.status_code, response.json()["code"]) == (503, "webhook_not_configured")


def test_unknown_path_without_key_is_401_not_404(client: TestClient):
    assert_unauthorized(client.get("/no-such-route"))


@pytest.mark.parametrize("key", [OLD_KEY, NEW_KEY])
@pytest.mark.parametrize("header", ["authorization", "x-api-key"])
def test_both_rotated_keys_work_in_both_header_forms(client: TestClient, key: str, header: str):
    value = f"Bearer {key}" if header == "authorization" else key
    response = client.post(
        "/products",
        headers={header: value},
        json={"sku": "MUG-1", "name": "Mug", "price": "3.00", "stock": 1},
    )
    assert response.status_code == 201
    assert client.get("/products", headers={header: value}).json()["total"] == 1


def test_bearer_scheme_is_case_insensitive(client: TestClient):
    response = client.get("/products", headers={"Authorization": f"bearer {NEW_KEY}"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer wrong-key-0000000000"},
        {"X-API-Key": "wrong-key-0000000000"},
        {"Authorization": f"Basic {OLD_KEY}"},
        {"Authorization": OLD_KEY},
        {"Authorization": "Bearer "},
        {"X-API-Key": OLD_KEY[:-1]},
        {"X-API-Key": OLD_KEY + "x"},
        {"X-API-Key": f"{OLD_KEY},{NEW_KEY}"},
    ],
    ids=[
        "wrong-bearer",
        "wrong-header",
        "basic-scheme",
        "no-scheme",
        "empty-bearer",
        "prefix-of-key",
        "key-plus-one",
        "both-keys-joined",
    ],
)
def test_wrong_or_malformed_key_is_401(client: TestClient, headers: dict[str, str]):
    assert_unauthorized(client.get("/products", headers=headers))


def test_refused_request_changes_nothing(client: TestClient):
    body = {"sku": "MUG-1", "name": "Mug", "price": "3.00", "stock": 1}
    assert_unauthorized(client.post("/products", json=body))
    assert client.get("/products", headers={"X-API-Key": OLD_KEY}).json()["total"] == 0


def test_without_api_keys_the_api_is_open_and_the_start_up_log_says_so(caplog):
    with caplog.at_level(logging.INFO, logger="app.security"):
        client = make_client()
    assert client.get("/products").status_code == 200
    assert client.get("/metrics").status_code == 200
    assert any(
        "API is open" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records
    )


def test_start_up_log_counts_keys_and_never_shows_them(caplog):
    with caplog.at_level(logging.DEBUG):
        make_client(api_keys=f"{OLD_KEY},{NEW_KEY}")
    assert any("2 key(s)" in r.getMessage() for r in caplog.records)
    assert OLD_KEY not in caplog.text and NEW_KEY not in caplog.text


def test_openapi_declares_both_key_forms_on_protected_operations_only(client: TestClient):
    schema = client.get("/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["ApiKeyBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key from API_KEYS.",
    }
    assert schemes["ApiKeyHeader"]["in"] == "header"
    assert schemes["ApiKeyHeader"]["name"] == "X-API-Key"
    create_order = schema["paths"]["/orders"]["post"]
    assert create_order["security"] == [{"ApiKeyBearer": []}, {"ApiKeyHeader": []}]
    assert "401" in create_order["responses"]
    assert "security" not in schema["paths"]["/healthz"]["get"]
    assert "security" not in schema["paths"]["/webhooks/payment"]["post"]
    assert "security" not in schema["paths"]["/readyz"]["get"]


def test_api_keys_setting_splits_commas_and_hides_values():
    settings = Settings(_env_file=None, api_keys=f" {OLD_KEY} ,, {NEW_KEY} ")
    assert [key.get_secret_value() for key in settings.api_keys] == [OLD_KEY, NEW_KEY]
    assert OLD_KEY not in repr(settings) and OLD_KEY not in str(settings.model_dump())


def test_api_keys_setting_from_the_environment(monkeypatch):
    monkeypatch.setenv("API_KEYS", f"{OLD_KEY},{NEW_KEY}")
    assert len(Settings(_env_file=None).api_keys) == 2


def test_short_key_in_production_fails_loudly_without_showing_it():
    with pytest.raises(ValidationError) as raised:
        Settings(_env_file=None, app_env="production", api_keys="short-key")
    assert "16 characters" in str(raised.value)
    assert "short-key" not in str(raised.value)
