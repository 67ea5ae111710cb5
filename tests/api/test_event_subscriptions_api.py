"""/event-subscriptions over HTTP: create (secret shown once), list, get, delete, the delivery
log, and the URLs that are refused.

The refusal tests run with EVENT_ALLOW_PRIVATE_URLS unset, against loopback forms and private
literals where no server listens; nothing records an event while they run, and a subscription
that is wrongly accepted is deleted at once, before the test fails: no delivery can start.
"""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.core.config import Settings
from app.events import url_safety
from app.main import create_app
from tests.support.serving import serving

RECEIVER = "http://127.0.0.1:9/hooks"  # loopback, nothing listens


def make_client(settings: Settings, engine: Engine, **overrides: object) -> TestClient:
    configured = settings.model_copy(update=overrides)
    return TestClient(create_app(configured, engine))


@pytest.fixture
def allowed(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    configured = settings.model_copy(update={"event_allow_private_urls": True})
    with serving(create_app(configured, engine)) as client:
        yield client


@pytest.fixture
def strict(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    # No lifespan: no delivery worker runs at all while URLs are probed.
    yield make_client(settings, engine, event_allow_private_urls=False)


def subscribe(client: TestClient, url: str = RECEIVER, **body: object):
    return client.post("/event-subscriptions", json={"url": url, "types": ["*"], **body})


def test_create_answers_201_with_location_and_the_secret_once(allowed: TestClient):
    response = subscribe(allowed, types=["order.paid", "order.created"], description="erp")

    assert response.status_code == 201
    created = response.json()
    assert response.headers["Location"] == f"/event-subscriptions/{created['id']}"
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 30
    assert created["types"] == ["order.created", "order.paid"]
    assert created["enabled"] is True and created["description"] == "erp"
    assert created["url"] == RECEIVER and created["created_at"].endswith("Z")

    shown = allowed.get(f"/event-subscriptions/{created['id']}")
    assert shown.status_code == 200
    assert shown.json() == {k: v for k, v in created.items() if k != "secret"}
    listed = allowed.get("/event-subscriptions").json()
    assert listed["total"] == 1 and listed["next"] is None
    assert "secret" not in listed["items"][0]
    assert created["secret"] not in allowed.get("/event-subscriptions").text


def test_two_subscriptions_get_different_secrets(allowed: TestClient):
    assert subscribe(allowed).json()["secret"] != subscribe(allowed).json()["secret"]


def test_delete_answers_204_then_404(allowed: TestClient):
    created = subscribe(allowed).json()

    assert allowed.delete(f"/event-subscriptions/{created['id']}").status_code == 204
    gone = allowed.get(f"/event-subscriptions/{created['id']}")
    assert gone.status_code == 404 and gone.json()["code"] == "not_found"
    assert allowed.delete(f"/event-subscriptions/{created['id']}").status_code == 404
    assert allowed.get(f"/event-subscriptions/{created['id']}/deliveries").status_code == 404
    assert allowed.get("/event-subscriptions").json()["total"] == 0


def test_subscriptions_page_by_cursor(allowed: TestClient):
    ids = [subscribe(allowed).json()["id"] for _ in range(5)]

    first = allowed.get("/event-subscriptions", params={"limit": 2}).json()
    second = allowed.get("/event-subscriptions", params={"limit": 2, "after": first["next"]})
    rest = allowed.get("/event-subscriptions", params={"limit": 2, "after": second.json()["next"]})

    assert [s["id"] for s in first["items"]] == ids[:2]
    assert second.json()["total"] is None and second.json()["offset"] is None
    assert [s["id"] for s in second.json()["items"] + rest.json()["items"]] == ids[2:]
    assert rest.json()["next"] is None
    both = allowed.get("/event-subscriptions", params={"after": first["next"], "offset": 1})
    assert both.status_code == 422


@pytest.mark.parametrize(
    "body",
    [
        {"url": RECEIVER, "types": []},
        {"url": RECEIVER, "types": ["order.refunded"]},
        {"url": RECEIVER, "types": ["*", "order.paid"]},
        {"url": RECEIVER, "types": ["order.paid", "order.paid"]},
        {"url": RECEIVER},
        {"url": "", "types": ["*"]},
        {"url": RECEIVER, "types": ["*"], "secret": "whsec_mine"},
        {"url": RECEIVER, "types": ["*"], "description": "x" * 501},
    ],
)
def test_invalid_bodies_are_422_validation_error(allowed: TestClient, body: dict):
    response = allowed.post("/event-subscriptions", json=body)

    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
    assert allowed.get("/event-subscriptions").json()["total"] == 0


REFUSED_URLS = [
    "http://127.0.0.1:9/hooks",
    "http://127.1.2.3:9/hooks",
    "http://localhost:9/hooks",
    "http://[::1]:9/hooks",
    "http://0.0.0.0:9/hooks",
    "http://2130706433:9/hooks",
    "http://[::ffff:127.0.0.1]:9/hooks",
    "http://10.0.0.1:9/hooks",
    "http://172.16.0.1:9/hooks",
    "http://192.168.0.1:9/hooks",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fe80::1]:9/hooks",
    "http://224.0.0.1:9/hooks",
    "ftp://127.0.0.1/hooks",
    "file:///etc/passwd",
    "javascript:alert(1)",
    "http://user:password@127.0.0.1:9/hooks",
    "not a url",
]


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_non_public_urls_are_refused_and_nothing_is_stored(strict: TestClient, url: str):
    response = subscribe(strict, url)
    if response.status_code == 201:  # the refusal is broken: remove it before anything is sent
        strict.delete(f"/event-subscriptions/{response.json()['id']}")

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "url_not_allowed"
    assert response.headers["content-type"] == "application/problem+json"
    assert strict.get("/event-subscriptions").json()["total"] == 0


def test_deliveries_of_a_new_subscription_are_an_empty_page(allowed: TestClient):
    created = subscribe(allowed).json()

    page = allowed.get(f"/event-subscriptions/{created['id']}/deliveries").json()

    assert page == {"items": [], "total": None, "limit": 20, "offset": None, "next": None}
    foreign = allowed.get(
        f"/event-subscriptions/{created['id']}/deliveries", params={"after": "bm9wZQ"}
    )
    assert foreign.status_code == 422 and foreign.json()["code"] == "invalid_cursor"


def test_duplicate_keys_in_a_subscription_body_are_400_and_store_nothing(allowed: TestClient):
    """`{"types": ["order.paid"], "types": ["*"]}` would subscribe to everything: it is
    malformed JSON, as on every other route that takes a body."""
    body = f'{{"url": "{RECEIVER}", "types": ["order.paid"], "types": ["*"]}}'

    response = allowed.post(
        "/event-subscriptions", content=body, headers={"content-type": "application/json"}
    )

    assert response.status_code == 400, response.text
    assert response.json()["code"] == "bad_request"
    assert allowed.get("/event-subscriptions").json()["total"] == 0


def test_a_deleted_subscriptions_id_is_never_given_to_a_new_one(allowed: TestClient):
    """A client holding a deleted subscription's id must get 404, not someone else's."""
    kept = subscribe(allowed).json()["id"]
    newest = subscribe(allowed).json()["id"]
    assert allowed.delete(f"/event-subscriptions/{newest}").status_code == 204

    created = subscribe(allowed).json()["id"]

    assert created not in (kept, newest) and created > newest
    assert allowed.get(f"/event-subscriptions/{newest}").status_code == 404


@pytest.mark.parametrize("after", ["", "A" * 201])
@pytest.mark.parametrize("path", ["/event-subscriptions", "/event-subscriptions/{id}/deliveries"])
def test_an_empty_or_overlong_cursor_is_422_invalid_cursor(
    allowed: TestClient, path: str, after: str
):
    subscription = subscribe(allowed).json()["id"]

    response = allowed.get(path.format(id=subscription), params={"after": after})

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_cursor"


def test_a_host_name_with_no_idna_form_is_refused_before_any_lookup(
    strict: TestClient, monkeypatch: pytest.MonkeyPatch
):
    looked_up: list[str] = []

    async def public(host: str, port: int) -> list[str]:  # never the system resolver
        looked_up.append(host)
        return ["93.184.215.14"]

    monkeypatch.setattr(url_safety, "system_resolver", public)
    response = subscribe(strict, "https://\u2603.example/hooks")  # a snowman: no IDNA 2008 form
    if response.status_code == 201:
        strict.delete(f"/event-subscriptions/{response.json()['id']}")

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "url_not_allowed"
    assert looked_up == []


def test_an_internationalised_host_is_accepted_and_looked_up_in_its_idna_form(
    strict: TestClient, monkeypatch: pytest.MonkeyPatch
):
    looked_up: list[str] = []

    async def public(host: str, port: int) -> list[str]:
        looked_up.append(host)
        return ["93.184.215.14"]

    monkeypatch.setattr(url_safety, "system_resolver", public)
    response = subscribe(strict, "https://B\u00fccher.example/hooks")

    assert response.status_code == 201, response.text
    assert response.json()["url"] == "https://B\u00fccher.example/hooks"  # as the client sent it
    assert looked_up == ["xn--bcher-kva.example"]
    strict.delete(f"/event-subscriptions/{response.json()['id']}")
