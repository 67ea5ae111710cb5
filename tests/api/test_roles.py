"""Keys that can do only their job (the contract's "Access"): every call × every role on both
engines, refused before any work; and the actor on every kind of change.

CONTRACT below is the contract's roles written out per call, the table a reader checks against
the contract's words; the routes' own declarations (app/http/access.py) must equal it, so a
route added without roles, or with others, fails here.
"""

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine

from app.core.access import Role
from app.core.config import Settings
from app.http.access import declared, role_table
from app.main import create_app
from app.routers import ROUTERS
from app.tables import EventType
from tests.api.test_payment_window import run
from tests.support.event_receiver import Receiver
from tests.support.factories import product_body
from tests.support.live_server import ROOT
from tests.support.serving import serving
from tests.support.stripe_events import STRIPE_SECRET, deliver_stripe, succeeded
from tests.support.webhooks import SECRET, deliver, event_body

S, F, R = Role.STOREFRONT, Role.FULFILLMENT, Role.READONLY
NO_KEY = "no key"
# Who besides admin may make each call (the contract's "Access").
CONTRACT: dict[str, set[Role] | str] = {
    "POST /products/import": set(),
    "GET /products/export": {F, R},
    "POST /products": set(),
    "GET /products": {S, F, R},
    "GET /products/{product_id}": {S, F, R},
    "PUT /products/{product_id}": set(),
    "PATCH /products/{product_id}": set(),
    "DELETE /products/{product_id}": set(),
    "POST /products/{product_id}/stock-adjustments": {F},
    "POST /products/{product_id}/stock-counts": {F},
    "GET /products/{product_id}/stock-movements": {F, R},
    "GET /products/{product_id}/stock-movements/{movement_id}": {F, R},
    "POST /orders": {S},
    "GET /orders": {F, R},
    "GET /orders/{order_id}": {S, F, R},
    "PUT /orders/{order_id}": set(),
    "PATCH /orders/{order_id}": set(),
    "DELETE /orders/{order_id}": {S},
    "POST /orders/{order_id}/shipments": {F},
    "GET /orders/{order_id}/shipments": {F, R},
    "GET /orders/{order_id}/shipments/{shipment_id}": {F, R},
    "POST /orders/{order_id}/refunds": set(),
    "GET /orders/{order_id}/refunds": {F, R},
    "GET /orders/{order_id}/refunds/{refund_id}": {F, R},
    "GET /events": {R},
    "POST /event-subscriptions": set(),
    "GET /event-subscriptions": {R},
    "GET /event-subscriptions/{subscription_id}": {R},
    "DELETE /event-subscriptions/{subscription_id}": set(),
    "GET /event-subscriptions/{subscription_id}/deliveries": {R},
    "PATCH /event-subscriptions/{subscription_id}": set(),
    "POST /event-subscriptions/{subscription_id}/rotate-secret": set(),
    "POST /event-subscriptions/{subscription_id}/test": set(),
    "POST /event-subscriptions/{subscription_id}/deliveries/{delivery_id}/retry": set(),
    "GET /metrics": {R},
    "GET /healthz": NO_KEY,
    "GET /readyz": NO_KEY,
    "POST /webhooks/payment": NO_KEY,
    "POST /webhooks/stripe": NO_KEY,
}
KEYS = {
    Role.ADMIN: ("ops", "admin-key-5c2e9b1f7a3d4e60"),
    Role.STOREFRONT: ("shop", "shop-key-8d4f2a6c1e9b3750"),
    Role.FULFILLMENT: ("warehouse", "warehouse-key-1a7e5c3b9d2f"),
    Role.READONLY: ("dashboard", "dashboard-key-6b0d8f4a2c7e"),
}
API_KEYS = [SecretStr(f"{name}:{role}:{key}") for role, (name, key) in KEYS.items()]


def as_role(role: Role) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[role][1]}"}


@pytest.fixture
def keyed(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    configured = settings.model_copy(
        update={
            "api_keys": API_KEYS,
            "webhook_secret": SecretStr(SECRET),
            "stripe_webhook_secret": SecretStr(STRIPE_SECRET),
            "event_allow_private_urls": True,
        }
    )
    with serving(create_app(configured, engine)) as client:
        yield client


def routes() -> dict[str, APIRoute]:
    return {
        f"{method} {route.path}": route
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
    }


# ------------------------------------------------------------------ the table and the routes


def test_every_route_declares_the_roles_the_contract_gives_it():
    undeclared = sorted(call for call, route in routes().items() if declared(route) is None)
    assert undeclared == [], f"declare who may make these calls (app/http/access.py): {undeclared}"
    found: dict[str, set[Role] | str] = {}
    for call, route in routes().items():
        access = declared(route)
        assert access is not None
        found[call] = access.roles - {Role.ADMIN} if access.key_needed else NO_KEY
        assert Role.ADMIN in access.roles
    assert found == CONTRACT


def test_readonly_may_make_every_get_and_nothing_else():
    for call, allowed in CONTRACT.items():
        if allowed != NO_KEY:
            assert (R in allowed) == call.startswith("GET "), call


def test_the_documented_table_is_the_routes_table():
    table = role_table(route for router in ROUTERS for route in router.routes)
    assert table in (ROOT / "docs" / "operations.md").read_text(), table


def test_openapi_shows_each_operations_roles(keyed: TestClient):
    paths = keyed.get("/openapi.json").json()["paths"]
    for call, allowed in CONTRACT.items():
        method, path = call.split(" ", 1)
        operation = paths[path][method.lower()]
        if allowed == NO_KEY:
            assert "x-roles" not in operation, call
            continue
        names = [role.value for role in Role if role is Role.ADMIN or role in allowed]
        assert operation["x-roles"] == names, call
        assert f"**Roles**: {', '.join(names)}." in operation["description"], call
        assert ("403" in operation["responses"]) == (len(names) < len(Role)), call


# ------------------------------------------------------------------ every call, every role


def attempt(client: TestClient, call: str, role: Role) -> Any:
    """The call with the role's key, on ids that exist nowhere and an empty body: a call the
    role may make gets past the check (200, 404 or 422), one it may not is 403."""
    method, template = call.split(" ", 1)
    path = template
    for name in ("product_id", "order_id", "subscription_id", "movement_id"):
        path = path.replace("{" + name + "}", "999999")
    body = {} if method in ("POST", "PUT", "PATCH") else None
    return client.request(method, path, json=body, headers=as_role(role))


def test_every_call_with_every_role_is_allowed_or_forbidden_as_the_contract_says(
    keyed: TestClient,
):
    expected, seen = {}, {}
    for call, allowed in CONTRACT.items():
        if allowed == NO_KEY:
            continue
        calls = [call, "HEAD" + call[3:]] if call.startswith("GET ") else [call]
        for each in calls:
            for role in Role:
                may = role is Role.ADMIN or role in allowed
                response = attempt(keyed, each, role)
                expected[each, role.value] = "allowed" if may else 403
                status = response.status_code
                seen[each, role.value] = "allowed" if status not in (401, 403) else status
                if status == 403 and not each.startswith("HEAD"):
                    problem = response.json()
                    assert problem["code"] == "forbidden"
                    assert problem["role"] == role.value
                    names = [r.value for r in Role if r is Role.ADMIN or r in allowed]
                    assert problem["required"] == names
    assert seen == expected


def test_a_forbidden_call_is_refused_before_its_body_idempotency_or_the_database(
    keyed: TestClient, db_kind: str
):
    product = keyed.post("/products", json=product_body(stock=5), headers=as_role(Role.ADMIN))
    assert product.status_code == 201
    pid = product.json()["id"]
    shop = as_role(Role.STOREFRONT)

    broken = keyed.post(
        f"/products/{pid}/stock-adjustments",
        content=b'{"delta": ',
        headers={**shop, "Content-Type": "application/json", "Idempotency-Key": "adj-1"},
    )
    valid = keyed.post(
        f"/products/{pid}/stock-adjustments",
        json={"delta": 5, "reason": "received"},
        headers={**shop, "Idempotency-Key": "adj-2"},
    )
    created = keyed.post("/products", json=product_body(), headers=shop)

    assert [broken.status_code, valid.status_code, created.status_code] == [403, 403, 403]
    admin = as_role(Role.ADMIN)
    assert keyed.get(f"/products/{pid}", headers=admin).json()["stock"] == 5
    assert keyed.get("/products", headers=admin).json()["total"] == 1
    movements = keyed.get(f"/products/{pid}/stock-movements", headers=admin).json()
    assert [m["reason"] for m in movements["items"]] == ["initial"]
    keys = run(keyed, _idempotency_keys)
    assert keys == 0


async def _idempotency_keys(conn: Any) -> int:
    from app.db.base import Sql

    return int(await conn.fetch_value(Sql("SELECT count(*) FROM idempotency_keys")))


def test_a_storefront_key_places_reads_and_cancels_but_cannot_mark_paid(keyed: TestClient):
    """The issue's case: with the key a storefront needs, PUT {"status": "PAID"} was a 200 and
    order.paid reached the shop's subscriber."""
    admin, shop = as_role(Role.ADMIN), as_role(Role.STOREFRONT)
    pid = keyed.post("/products", json=product_body(stock=5), headers=admin).json()["id"]

    placed = keyed.post("/orders", json={"product_id": pid, "quantity": 2}, headers=shop)
    assert placed.status_code == 201, placed.text
    order = placed.json()
    paid = keyed.put(f"/orders/{order['id']}", json={"status": "PAID"}, headers=shop)
    subscribed = keyed.post(
        "/event-subscriptions", json={"url": "http://127.0.0.1:9/", "types": ["*"]}, headers=shop
    )
    read = keyed.get(f"/orders/{order['id']}", headers=shop)
    canceled = keyed.delete(f"/orders/{order['id']}", headers=shop)

    assert (paid.status_code, paid.json()["required"]) == (403, ["admin"])
    assert subscribed.status_code == 403
    assert read.status_code == 200 and read.json()["status"] == "PENDING"
    assert canceled.status_code == 200 and canceled.json()["status"] == "CANCELED"
    types = [e["type"] for e in keyed.get("/events", headers=admin).json()["items"]]
    assert "order.paid" not in types


# ------------------------------------------------------------------ the actor of each change


# The events of orders and stock: the tests below make products only to order them.
NOT_PRODUCTS = [str(t) for t in EventType if not t.startswith("product.")]


def feed(client: TestClient, at_least: int) -> list[dict[str, Any]]:
    """The feed's order and stock events, once it holds `at_least` (a transaction open
    elsewhere on a PostgreSQL server holds new events back until it ends)."""
    deadline = time.monotonic() + 30
    params = {"limit": 100, "type": NOT_PRODUCTS}
    while True:
        items = client.get("/events", params=params, headers=as_role(Role.ADMIN))
        events = items.json()["items"]
        if len(events) >= at_least or time.monotonic() > deadline:
            return events
        time.sleep(0.05)


def movements(client: TestClient, product_id: int) -> list[tuple[str, str]]:
    page = client.get(f"/products/{product_id}/stock-movements", headers=as_role(Role.ADMIN))
    return [(m["reason"], m["actor"]) for m in reversed(page.json()["items"])]


def test_a_movement_and_its_event_name_the_key_that_made_them(keyed: TestClient):
    admin, warehouse = as_role(Role.ADMIN), as_role(Role.FULFILLMENT)
    pid = keyed.post("/products", json=product_body(stock=5), headers=admin).json()["id"]

    adjusted = keyed.post(
        f"/products/{pid}/stock-adjustments",
        json={"delta": 3, "reason": "received"},
        headers=warehouse,
    )

    assert adjusted.status_code == 201 and adjusted.json()["actor"] == "warehouse"
    assert movements(keyed, pid) == [("initial", "ops"), ("received", "warehouse")]
    (event,) = feed(keyed, 1)
    assert (event["type"], event["actor"]) == ("stock.adjusted", "warehouse")
    assert event["data"]["movement"]["actor"] == "warehouse"
    assert list(event) == ["id", "type", "created_at", "actor", "data"]


def test_order_events_name_who_placed_paid_and_canceled(keyed: TestClient):
    admin, shop = as_role(Role.ADMIN), as_role(Role.STOREFRONT)
    pid = keyed.post("/products", json=product_body(stock=5), headers=admin).json()["id"]
    first = keyed.post("/orders", json={"product_id": pid, "quantity": 1}, headers=shop).json()
    second = keyed.post("/orders", json={"product_id": pid, "quantity": 2}, headers=shop).json()

    keyed.put(f"/orders/{first['id']}", json={"status": "PAID"}, headers=admin)
    keyed.delete(f"/orders/{second['id']}", headers=shop)

    events = feed(keyed, 4)
    assert [(e["type"], e["data"]["order"]["id"], e["actor"]) for e in events] == [
        ("order.created", first["id"], "shop"),
        ("order.created", second["id"], "shop"),
        ("order.paid", first["id"], "ops"),
        ("order.canceled", second["id"], "shop"),
    ]
    assert movements(keyed, pid) == [
        ("initial", "ops"),
        ("order_placed", "shop"),
        ("order_placed", "shop"),
        ("order_canceled", "shop"),
    ]


def test_a_payment_webhook_acts_as_webhook(keyed: TestClient):
    admin, shop = as_role(Role.ADMIN), as_role(Role.STOREFRONT)
    pid = keyed.post("/products", json=product_body(stock=5), headers=admin).json()["id"]
    order = keyed.post("/orders", json={"product_id": pid, "quantity": 1}, headers=shop).json()

    paid = deliver(keyed, event_body(order))

    assert paid.status_code == 200, paid.text
    assert [(e["type"], e["actor"]) for e in feed(keyed, 2)] == [
        ("order.created", "shop"),
        ("order.paid", "webhook"),
    ]


def test_a_stripe_webhook_needs_no_key_and_acts_as_stripe(keyed: TestClient):
    admin, shop = as_role(Role.ADMIN), as_role(Role.STOREFRONT)
    pid = keyed.post("/products", json=product_body(stock=5), headers=admin).json()["id"]
    order = keyed.post("/orders", json={"product_id": pid, "quantity": 1}, headers=shop).json()

    paid = deliver_stripe(keyed, succeeded(order))

    assert paid.status_code == 200, paid.text
    assert [(e["type"], e["actor"]) for e in feed(keyed, 2)] == [
        ("order.created", "shop"),
        ("order.paid", "stripe"),
    ]


def test_a_push_delivery_carries_the_actor_as_the_feed_shows_it(keyed: TestClient):
    admin = as_role(Role.ADMIN)
    with Receiver().running() as receiver:
        subscribed = keyed.post(
            "/event-subscriptions",
            json={"url": receiver.url("/hook"), "types": ["stock.adjusted"]},
            headers=admin,
        )
        assert subscribed.status_code == 201, subscribed.text
        receiver.secrets["/hook"] = subscribed.json()["secret"]
        pid = keyed.post("/products", json=product_body(stock=5), headers=admin).json()["id"]
        keyed.post(
            f"/products/{pid}/stock-adjustments",
            json={"delta": 1, "reason": "received"},
            headers=as_role(Role.FULFILLMENT),
        )
        assert receiver.wait_for(lambda: len(receiver.at("/hook")) >= 1), "nothing delivered"
        (event,) = feed(keyed, 1)

    (got,) = receiver.at("/hook")
    assert got.verified and got.event == event
    assert event["actor"] == "warehouse"


def test_expiry_acts_as_system(settings: Settings, engine: Engine):
    changes = {
        "api_keys": API_KEYS,
        "pending_order_ttl_seconds": 1,
        "housekeeping_interval_seconds": 0.05,
    }
    with serving(create_app(settings.model_copy(update=changes), engine)) as client:
        admin, shop = as_role(Role.ADMIN), as_role(Role.STOREFRONT)
        pid = client.post("/products", json=product_body(stock=5), headers=admin).json()["id"]
        order = client.post("/orders", json={"product_id": pid, "quantity": 2}, headers=shop)
        url = f"/orders/{order.json()['id']}"
        deadline = time.monotonic() + 10
        while client.get(url, headers=admin).json()["status"] == "PENDING":
            assert time.monotonic() < deadline, "the order never expired"
            time.sleep(0.1)

        events = feed(client, 2)
        moved = movements(client, pid)

    assert [(e["type"], e["actor"]) for e in events] == [
        ("order.created", "shop"),
        ("order.canceled", "system"),
    ]
    assert moved == [("initial", "ops"), ("order_placed", "shop"), ("order_expired", "system")]


def test_without_api_keys_every_change_is_anonymous(client: TestClient):
    pid = client.post("/products", json=product_body(stock=5)).json()["id"]
    client.post("/orders", json={"product_id": pid, "quantity": 1})

    events = feed(client, 1)  # waits out a transaction open elsewhere on PostgreSQL
    page = client.get(f"/products/{pid}/stock-movements").json()["items"]
    assert {e["actor"] for e in events} == {"anonymous"} and events
    assert {m["actor"] for m in page} == {"anonymous"}


def test_the_access_line_names_the_actor_never_the_key(keyed: TestClient, capsys):
    capsys.readouterr()
    keyed.get("/products", headers={**as_role(Role.READONLY), "X-Request-ID": "actor-line-1"})
    keyed.get("/products", headers={"X-API-Key": "wrong", "X-Request-ID": "actor-line-2"})

    err = capsys.readouterr().err
    lines = {
        line["request_id"]: line
        for line in (json.loads(text) for text in err.splitlines() if text.startswith("{"))
        if line.get("logger") == "app.access"
    }
    assert lines["actor-line-1"]["actor"] == "dashboard"
    assert "actor" not in lines["actor-line-2"]
    assert all(key not in err for _, key in KEYS.values())
