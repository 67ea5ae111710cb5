"""Body size limit: 413 payload_too_large before the body is read, declared or streamed."""

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, func, select

from app.core.config import Settings
from app.main import create_app
from app.tables import Product

LIMIT = 2048


@pytest.fixture
def small_limit_client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    yield TestClient(create_app(settings.model_copy(update={"max_body_bytes": LIMIT}), engine))


def padded_product(size: int) -> bytes:
    """A valid product body of exactly `size` bytes (the description pads it)."""
    body = {"sku": "PAD-1", "name": "Padded", "price": "1.00", "stock": 1, "description": ""}
    base = len(json.dumps(body).encode())
    body["description"] = "x" * (size - base)
    encoded = json.dumps(body).encode()
    assert len(encoded) == size
    return encoded


def chunks(payload: bytes, size: int = 500) -> Iterator[bytes]:
    for start in range(0, len(payload), size):
        yield payload[start : start + size]


def products_in(engine: Engine) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(Product)).one()


def assert_too_large(response) -> None:
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (body["code"], body["limit"], body["instance"]) == (
        "payload_too_large",
        LIMIT,
        "/products",
    )
    assert body["request_id"] == response.headers["x-request-id"]


def test_declared_length_over_the_limit_is_413_and_nothing_is_created(
    small_limit_client: TestClient, engine: Engine
):
    assert_too_large(
        small_limit_client.post(
            "/products",
            content=padded_product(LIMIT + 1),
            headers={"content-type": "application/json"},
        )
    )
    assert products_in(engine) == 0


def test_chunked_body_over_the_limit_is_413_and_nothing_is_created(
    small_limit_client: TestClient, engine: Engine
):
    response = small_limit_client.post(
        "/products",
        content=chunks(padded_product(LIMIT + 1)),
        headers={"content-type": "application/json"},
    )
    assert "content-length" not in response.request.headers
    assert_too_large(response)
    assert products_in(engine) == 0


@pytest.mark.parametrize("streamed", [False, True], ids=["declared", "chunked"])
def test_body_of_exactly_the_limit_is_served(
    small_limit_client: TestClient, engine: Engine, streamed: bool
):
    payload = padded_product(LIMIT)
    response = small_limit_client.post(
        "/products",
        content=chunks(payload) if streamed else payload,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 201, response.text
    assert products_in(engine) == 1


def test_default_limit_is_one_mebibyte():
    assert Settings(_env_file=None).max_body_bytes == 1024 * 1024
