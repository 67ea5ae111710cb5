"""The request path over HTTP: trailing slashes, HEAD, unknown query parameters, CORS, one
credential per request and its principal, header limits (the contract's Conventions, Access)."""

from collections.abc import Iterator

import pytest
from fastapi import Request
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlmodel import SQLModel

from app.core.config import Settings
from app.core.logs import redact_query
from app.db.connect import create_db_engine
from app.main import create_app
from tests.support.databases import stamp_head
from tests.support.factories import product_body

KEY = "path-key-0a1b2c3d4e5f6a7b"
OTHER_KEY = "path-key-ffeeddccbbaa9988"
ORIGIN = "https://shop.example"


def keyed_client(**settings: object) -> TestClient:
    """A fresh in-memory app with API keys; for what is decided before any database work."""
    config = Settings(
        _env_file=None,
        app_env="test",
        database_url="sqlite://",
        api_keys=f"{KEY},{OTHER_KEY}",
        **settings,
    )
    engine = create_db_engine(config)
    SQLModel.metadata.create_all(engine)
    stamp_head(engine)
    app = create_app(config, engine)

    @app.get("/whoami")
    async def whoami(request: Request) -> dict[str, str | None]:
        return {"principal": request.state.principal}

    return TestClient(app)


# --- trailing slashes: both forms answer directly, never a redirect -------------------------


def test_post_with_a_trailing_slash_creates_directly(client: TestClient) -> None:
    response = client.post("/products/", json=product_body(), follow_redirects=False)
    assert response.status_code == 201, response.text
    product_id = response.json()["id"]
    for path in (f"/products/{product_id}", f"/products/{product_id}/"):
        got = client.get(path, follow_redirects=False)
        assert got.status_code == 200 and got.json()["id"] == product_id
    assert client.get("/products/", follow_redirects=False).json()["total"] == 1


@pytest.mark.parametrize("path", ["/orders/7/", "/orders/", "/healthz/", "/nowhere/"])
def test_no_path_is_ever_a_redirect(client: TestClient, path: str) -> None:
    response = client.get(path, follow_redirects=False)
    assert response.status_code in (200, 404), response.status_code
    assert "location" not in response.headers


# --- HEAD on every GET route -----------------------------------------------------------------


def _get_paths(client: TestClient) -> list[str]:
    paths = client.get("/openapi.json").json()["paths"]
    return [
        path.replace("{product_id}", "1").replace("{order_id}", "1")
        for path, operations in paths.items()
        if "get" in operations
    ]


def test_head_answers_every_get_route_with_its_status_and_headers(client: TestClient) -> None:
    client.post("/products", json=product_body())
    paths = _get_paths(client)
    assert {"/products", "/products/1", "/orders", "/healthz", "/readyz", "/metrics"} <= set(paths)
    for path in paths:
        get = client.get(path, headers={"X-Request-ID": "same-id"})
        head = client.head(path, headers={"X-Request-ID": "same-id"})
        assert head.status_code == get.status_code, path
        assert head.content == b"", path
        for name in ("content-type", "etag", "x-request-id"):
            assert head.headers.get(name) == get.headers.get(name), (path, name)
        if path != "/metrics":  # its body changes between the two calls
            assert head.headers.get("content-length") == get.headers.get("content-length"), path


def test_head_of_a_missing_resource_is_its_404_without_body(client: TestClient) -> None:
    response = client.head("/orders/999")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.content == b""


# --- unknown query parameters ----------------------------------------------------------------


def test_a_misspelt_filter_is_422_not_every_order(client: TestClient) -> None:
    response = client.get("/orders", params={"staus": "PAID"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "validation_error"
    assert body["errors"] == [
        {"loc": ["query", "staus"], "msg": "Unknown query parameter", "type": "extra_forbidden"}
    ]


def test_every_unknown_parameter_is_named_and_known_ones_pass(client: TestClient) -> None:
    response = client.get("/products?limit=5&colour=red&q=mug&size=&colour=blue")
    assert [e["loc"] for e in response.json()["errors"]] == [
        ["query", "colour"],
        ["query", "size"],
    ]
    assert client.get("/products?limit=5&q=mug&in_stock=true").status_code == 200
    assert client.get("/products/?limit=5").status_code == 200
    assert client.head("/orders?staus=PAID").status_code == 422


def test_a_one_value_parameter_given_twice_is_422_and_a_list_parameter_is_not(
    client: TestClient,
) -> None:
    """`?sort=total&sort=-total` must not silently sort by one of them; `type` on the feed and
    `status` on orders take several values by design."""
    for url, name in [
        ("/orders?sort=total&sort=-total", "sort"),
        ("/products?q=mug&q=", "q"),
        ("/products?limit=5&limit=6", "limit"),
    ]:
        response = client.get(url)
        assert response.status_code == 422, url
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["errors"] == [
            {"loc": ["query", name], "msg": "Given more than once", "type": "repeated"}
        ]
    assert client.get("/events?type=order.paid&type=order.created").status_code == 200
    assert client.get("/orders?status=PAID&status=SHIPPED").status_code == 200


def test_routes_without_query_parameters_refuse_any(client: TestClient) -> None:
    product_id = client.post("/products", json=product_body()).json()["id"]
    response = client.get(f"/products/{product_id}?expand=all")
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["query", "expand"]


# --- CORS --------------------------------------------------------------------------------------


def test_without_cors_origins_no_cors_headers_are_sent() -> None:
    client = keyed_client()
    response = client.get("/healthz", headers={"Origin": ORIGIN})
    assert not [name for name in response.headers if name.startswith("access-control-")]
    preflight = client.options(
        "/orders", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 401  # no CORS configured: an OPTIONS like any other


def test_preflight_from_a_listed_origin_is_answered_before_the_key_check() -> None:
    client = keyed_client(cors_origins=f"{ORIGIN}, https://admin.example")
    response = client.options(
        "/orders",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, idempotency-key, content-type",
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == ORIGIN
    allowed = {
        h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")
    }
    assert {
        "authorization",
        "x-api-key",
        "content-type",
        "idempotency-key",
        "if-match",
        "x-request-id",
    } <= allowed
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "Origin" in response.headers["vary"]
    assert response.headers["x-request-id"]


@pytest.mark.parametrize(
    ("asked", "failure"),
    [
        ({"Access-Control-Request-Method": "TRACE"}, "Disallowed CORS method"),
        (
            {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-evil"},
            "Disallowed CORS headers",
        ),
    ],
)
def test_preflight_asking_a_method_or_header_not_allowed_is_refused(asked, failure) -> None:
    client = keyed_client(cors_origins=ORIGIN)
    response = client.options("/orders", headers={"Origin": ORIGIN, **asked})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "cors_not_allowed"
    assert response.json()["detail"].startswith(failure)
    assert response.headers["x-request-id"]


@pytest.mark.parametrize("extra", [None, " traceparent , Sentry-Trace,,authorization"])
def test_cors_allow_headers_adds_headers_a_browser_storefront_sends(extra: str | None) -> None:
    """A page that sends `traceparent` (or `sentry-trace`) is refused at preflight unless
    CORS_ALLOW_HEADERS lists it; the contract's own headers stay allowed either way."""
    settings = {"cors_origins": ORIGIN} | ({"cors_allow_headers": extra} if extra else {})
    client = keyed_client(**settings)
    asked = "traceparent, sentry-trace, authorization, content-type"
    response = client.options(
        "/orders",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": asked,
        },
    )
    if extra is None:
        assert response.status_code == 400 and response.json()["code"] == "cors_not_allowed"
        return
    assert response.status_code == 204, response.text
    allowed = [h.strip() for h in response.headers["access-control-allow-headers"].split(",")]
    lowered = [h.lower() for h in allowed]
    assert {"traceparent", "sentry-trace", "authorization", "content-type"} <= set(lowered)
    assert len(lowered) == len(set(lowered))


def test_cors_allow_headers_refuses_what_is_not_a_header_name() -> None:
    with pytest.raises(ValidationError, match="not a header name"):
        Settings(_env_file=None, cors_allow_headers="traceparent,bad header")


def test_listed_origin_gets_cors_headers_on_answers_others_do_not() -> None:
    client = keyed_client(cors_origins=ORIGIN)
    ok = client.get("/products", headers={"Origin": ORIGIN, "X-API-Key": KEY})
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == ORIGIN
    exposed = {h.strip() for h in ok.headers["access-control-expose-headers"].split(",")}
    assert exposed == {"ETag", "Location", "X-Request-ID", "Idempotent-Replayed", "Retry-After"}
    refused = client.get("/products", headers={"Origin": ORIGIN})
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == ORIGIN  # the browser sees the 401
    stranger = client.get("/products", headers={"Origin": "https://evil.example", "X-API-Key": KEY})
    assert "access-control-allow-origin" not in stranger.headers
    stranger_preflight = client.options(
        "/orders",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert stranger_preflight.status_code == 401


def test_star_allows_any_origin() -> None:
    client = keyed_client(cors_origins="*")
    response = client.get("/healthz", headers={"Origin": "https://anyone.example"})
    assert response.headers["access-control-allow-origin"] == "*"


def test_cors_origins_setting_splits_commas() -> None:
    settings = Settings(_env_file=None, cors_origins=" https://a.example/ ,, https://b.example")
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert Settings(_env_file=None).cors_origins == []


# --- one credential per request, and the principal -------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        [("X-API-Key", OTHER_KEY), ("Authorization", f"Bearer {KEY}")],
        [("X-API-Key", "wrong-guess-000000"), ("X-API-Key", KEY)],
        [("Authorization", "Bearer wrong-guess-0000"), ("Authorization", f"Bearer {KEY}")],
        [("X-API-Key", KEY), ("Authorization", f"Bearer {OTHER_KEY}")],
        [("X-API-Key", KEY), ("Authorization", f"Basic {KEY}")],
    ],
    ids=["two-keys-both-forms", "guess-then-key", "two-bearers", "key-then-other", "basic"],
)
def test_two_different_credentials_are_401(headers: list[tuple[str, str]]) -> None:
    response = keyed_client().get("/products", headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"


@pytest.mark.parametrize(
    "headers",
    [
        [("X-API-Key", KEY), ("Authorization", f"Bearer {KEY}")],
        [("Authorization", f"Bearer {KEY}"), ("X-API-Key", KEY)],
        [("X-API-Key", KEY), ("X-API-Key", KEY)],
    ],
    ids=["swagger-both-boxes", "bearer-first", "same-key-twice"],
)
def test_the_same_key_in_both_headers_counts_once(headers: list[tuple[str, str]]) -> None:
    """Swagger UI's Authorize dialog, both boxes filled with the key, sends it twice."""
    response = keyed_client().get("/products", headers=headers)
    assert response.status_code == 200, response.text


def test_thousands_of_guesses_with_the_right_key_are_refused() -> None:
    guesses = [("X-API-Key", f"guess-{n:06d}") for n in range(50)] + [("X-API-Key", KEY)]
    assert keyed_client(max_headers=100).get("/products", headers=guesses).status_code == 401


def test_the_principal_is_stable_per_key_and_never_the_key() -> None:
    client = keyed_client()
    by_header = client.get("/whoami", headers={"X-API-Key": KEY}).json()["principal"]
    by_bearer = client.get("/whoami", headers={"Authorization": f"Bearer {KEY}"}).json()
    other = client.get("/whoami", headers={"X-API-Key": OTHER_KEY}).json()["principal"]
    assert by_header == by_bearer["principal"]
    assert by_header != other
    assert len(by_header) == 16 and KEY not in by_header and by_header not in KEY


def test_without_api_keys_the_principal_is_none(client: TestClient) -> None:
    app = client.app

    @app.get("/whoami-open")  # type: ignore[attr-defined]
    async def whoami(request: Request) -> dict[str, str | None]:
        return {"principal": request.state.principal}

    assert client.get("/whoami-open").json() == {"principal": None}


# --- header limits ---------------------------------------------------------------------------


def test_too_many_headers_is_431() -> None:
    client = keyed_client(max_headers=20)
    headers = [(f"X-Filler-{n}", "x") for n in range(30)] + [("X-API-Key", KEY)]
    response = client.get("/products", headers=headers)
    assert response.status_code == 431
    body = response.json()
    assert (body["code"], body["max_headers"]) == ("headers_too_large", 20)
    assert response.headers["connection"] == "close"


def test_headers_over_the_byte_limit_are_431_even_before_the_key() -> None:
    client = keyed_client(max_header_bytes=4096)
    response = client.get("/products", headers={"X-Big": "x" * 5000})
    assert response.status_code == 431
    assert response.json()["code"] == "headers_too_large"
    assert (
        client.get("/products", headers={"X-Big": "x" * 3000, "X-API-Key": KEY}).status_code == 200
    )


# --- what the access line may show -------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "shown"),
    [
        (b"api_key=s3cret&limit=5", "api_key=[redacted]&limit=5"),
        (b"limit=5&token=abc&Password=x", "limit=5&token=[redacted]&Password=[redacted]"),
        (
            b"client_secret=a&signature=b&q=mug",
            "client_secret=[redacted]&signature=[redacted]&q=mug",
        ),
        (b"X-API-Key=k&status=PAID", "X-API-Key=[redacted]&status=PAID"),
        (b"api%5Fkey=k", "api%5Fkey=[redacted]"),
        (b"q=mug", "q=mug"),
    ],
)
def test_credential_like_query_parameters_are_redacted(query: bytes, shown: str) -> None:
    assert redact_query(query) == shown


@pytest.fixture
def open_client() -> Iterator[TestClient]:
    yield keyed_client()


def test_access_line_shows_the_redacted_query(open_client: TestClient, capsys) -> None:
    capsys.readouterr()
    open_client.get(
        "/products?limit=5&api_key=do-not-log-me",
        headers={"X-API-Key": KEY, "X-Request-ID": "redact-1"},
    )
    # The test's own HTTP client logs the URL it calls; the service's lines must not.
    err = "\n".join(
        line for line in capsys.readouterr().err.splitlines() if '"logger": "httpx"' not in line
    )
    assert "do-not-log-me" not in err and KEY not in err
    [line] = [line for line in err.splitlines() if '"redact-1"' in line]
    assert '"query":"limit=5&api_key=[redacted]"' in line


@pytest.mark.parametrize("method", ["POST", "DELETE", "TRACE"])
def test_healthz_answers_get_and_head_only(method: str) -> None:
    response = keyed_client().request(method, "/healthz")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


def test_every_api_route_sits_in_the_apps_own_router_unwrapped():
    """Routers are not included (which would wrap each in a layer matched per request): their
    routes are the app's, every one of them, in the routers' order."""
    from fastapi.routing import APIRoute

    from app.routers import ROUTERS

    app = create_app(Settings(_env_file=None, database_url="sqlite://"))
    declared = [route for router in ROUTERS for route in router.routes]
    own = [route for route in app.router.routes if isinstance(route, APIRoute)]
    assert all(route in own for route in declared)
    assert [r for r in own if r in declared] == declared
    assert not [r for r in app.router.routes if type(r).__name__ == "_IncludedRouter"]
