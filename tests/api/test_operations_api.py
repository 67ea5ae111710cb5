"""Errors, request ids, probes and documentation: the contract's Conventions and Operations."""

import re

import pytest

from app.core.config import Settings
from app.main import create_app
from tests.support.serving import serving

PROBLEM = "application/problem+json"


def test_unknown_route_is_a_404_problem(client):
    response = client.get("/nowhere")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert (body["code"], body["status"], body["instance"]) == ("not_found", 404, "/nowhere")
    assert body["request_id"] == response.headers["x-request-id"]


def test_wrong_method_is_a_405_problem(client):
    response = client.delete("/products")
    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "method_not_allowed"
    assert "allow" in response.headers


def test_malformed_json_is_400_bad_request(client):
    response = client.post(
        "/products", content=b'{"sku": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "bad_request"


def test_no_error_uses_fastapis_default_detail_shape(client):
    for response in (
        client.get("/products/abc"),
        client.get("/orders/0"),
        client.post("/orders", json={}),
    ):
        assert response.status_code == 422
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["code"] == "validation_error"


@pytest.mark.parametrize("sent", ["abc-123_X.y", "a" * 128])
def test_valid_client_request_id_is_echoed(client, sent):
    assert client.get("/healthz", headers={"X-Request-ID": sent}).headers["x-request-id"] == sent


@pytest.mark.parametrize("sent", ["", "has space", "a" * 129, "semi;colon"])
def test_invalid_client_request_id_is_replaced(client, sent):
    got = client.get("/healthz", headers={"X-Request-ID": sent}).headers["x-request-id"]
    assert got != sent and 1 <= len(got) <= 128


def test_unexpected_exception_is_a_logged_500_problem_without_traceback(settings, engine, caplog):
    app = create_app(settings, engine)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    with serving(app, raise_server_exceptions=False) as client:
        response = client.get("/boom", headers={"X-Request-ID": "trace-me"})

    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["x-request-id"] == "trace-me"
    body = response.json()
    assert body["code"] == "internal_error" and body["request_id"] == "trace-me"
    assert "secret internals" not in response.text and "Traceback" not in response.text
    assert any(r.exc_info and "secret internals" in str(r.exc_info[1]) for r in caplog.records)


def test_probes(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["database"] == "ok"


def test_readyz_is_503_when_the_database_is_unreachable():
    settings = Settings(
        _env_file=None,
        database_url="postgresql://nobody@127.0.0.1:9/none",
        db_pool_timeout_seconds=1,
    )
    with serving(create_app(settings)) as client:
        ready = client.get("/readyz")
        health = client.get("/healthz")
    assert ready.status_code == 503
    assert ready.headers["content-type"] == PROBLEM
    assert ready.json()["code"] == "database_unavailable"
    assert health.status_code == 200


def test_docs_and_redoc_load_their_assets_from_the_service(client):
    docs, redoc = client.get("/docs").text, client.get("/redoc").text
    assert "cdn" not in (docs + redoc).lower()
    for page, asset in (
        (docs, "swagger-ui-bundle.js"),
        (docs, "swagger-ui.css"),
        (redoc, "redoc.standalone.js"),
    ):
        url = re.search(r'["\'](/[^"\']*/' + re.escape(asset) + r')["\']', page).group(1)
        served = client.get(url)
        assert served.status_code == 200 and len(served.content) > 10_000


def test_openapi_documents_tags_examples_and_problem_errors(client):
    spec = client.get("/openapi.json").json()
    assert spec["info"]["title"] == "Orders & Inventory API" and spec["info"]["version"]
    tags = {tag["name"]: tag for tag in spec["tags"]}
    assert {"products", "orders", "webhooks"} <= tags.keys()
    assert all(tag["description"] for tag in tags.values())
    assert "Problem" in spec["components"]["schemas"]
    for path, method in (("/products", "post"), ("/orders", "post")):
        operation = spec["paths"][path][method]
        assert operation["requestBody"]["content"]["application/json"]["examples"]
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    assert list(response["content"]) == [PROBLEM], (path, method, status)
    assert "412" in spec["paths"]["/products/{product_id}"]["patch"]["responses"]
    assert "409" in spec["paths"]["/orders"]["post"]["responses"]
