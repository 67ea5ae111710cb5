"""Smoke tests: the happy path and the main error cases, against a running service.

Under pytest, each test starts a live server of its own (the `client_server` fixture). On its
own, it checks any deployment and exits non-zero if anything is wrong:

    BASE_URL=https://orders.example.com API_KEY=... WEBHOOK_SECRET=... \
        STRIPE_WEBHOOK_SECRET=whsec_... EVENT_RECEIVER_URL=https://hooks.example/in \
        python tests/live/test_smoke.py

Self-contained: it needs only httpx, and talks to the service over HTTP as any client would.
Without WEBHOOK_SECRET the signed-payment checks are skipped (the order is paid with PUT);
without STRIPE_WEBHOOK_SECRET, the Stripe webhook's; without EVENT_RECEIVER_URL (a URL the
service accepts for a subscription), managing a subscription.
"""

import base64
import hashlib
import hmac
import os
import sys
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx

PROBLEM_JSON = "application/problem+json"


# A client of the service that checks every answer against the status it expects.
class Smoke:
    def __init__(
        self,
        base_url: str,
        api_key: str = "",
        webhook_secret: str = "",
        stripe_secret: str = "",
        event_receiver_url: str = "",
    ) -> None:
        self.http = httpx.Client(base_url=base_url.rstrip("/"), timeout=15)
        self.auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.secret = webhook_secret.split(",")[0].strip()
        self.stripe_secret = stripe_secret.split(",")[0].strip()
        self.event_receiver_url = event_receiver_url
        self.run = uuid.uuid4().hex[:10]
        self.state: dict[str, Any] = {}

    def call(
        self, expected: int, method: str, path: str, code: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = {
            **({} if path.startswith("/webhooks/") else self.auth),
            **kwargs.pop("headers", {}),
        }
        response = self.http.request(method, path, headers=headers, **kwargs)
        context = f"{method} {path} answered {response.status_code}: {response.text[:500]}"
        assert response.status_code == expected, f"expected {expected}; {context}"
        assert response.headers.get("x-request-id"), f"no X-Request-ID; {context}"
        if expected >= 400:
            assert response.headers["content-type"].startswith(PROBLEM_JSON), context
            assert response.json()["status"] == expected, context
        if code is not None:
            assert response.json()["code"] == code, f"expected code {code}; {context}"
        return response

    def new_product(self, stock: int = 10, price: str = "12.50") -> dict[str, Any]:
        body = {
            "sku": f"SMOKE-{self.run}-{uuid.uuid4().hex[:6]}",
            "name": f"Smoke mug {self.run}",
            "price": price,
            "stock": stock,
        }
        return self.call(201, "POST", "/products", json=body).json()

    def stock(self, product_id: int) -> int:
        return self.call(200, "GET", f"/products/{product_id}").json()["stock"]

    def webhook(
        self,
        expected: int,
        event_id: str,
        payload: dict[str, Any],
        code: str | None = None,
        *,
        signature: str | None = None,
        timestamp: int | None = None,
    ) -> httpx.Response:
        body = httpx.Request("POST", "/", json=payload).content
        timestamp = int(time.time()) if timestamp is None else timestamp
        signature = signature or "sha256=" + sign(self.secret, event_id, timestamp, body)
        headers = {
            "Content-Type": "application/json",
            "X-Event-Id": event_id,
            "X-Webhook-Timestamp": str(timestamp),
            "X-Webhook-Signature": signature,
        }
        return self.call(expected, "POST", "/webhooks/payment", code, content=body, headers=headers)

    def stripe_webhook(
        self, expected: int, event: dict[str, Any], code: str | None = None, signature: str = ""
    ) -> httpx.Response:
        """POST a Stripe event signed as Stripe signs: `t=<now>,v1=<hex HMAC-SHA256 of
        "{t}.{raw body}">`, keyed by the whsec_ secret as written."""
        body = httpx.Request("POST", "/", json=event).content
        timestamp = int(time.time())
        key = self.stripe_secret.encode()
        digest = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "Stripe-Signature": f"t={timestamp},v1={signature or digest}",
        }
        return self.call(expected, "POST", "/webhooks/stripe", code, content=body, headers=headers)


def sign(secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    """The contract's scheme: HMAC-SHA256 hex over `{event_id}.{timestamp}.{raw body}`."""
    key = base64.b64decode(secret[6:]) if secret.startswith("whsec_") else secret.encode()
    message = f"{event_id}.{timestamp}.".encode() + body
    return hmac.new(key, message, hashlib.sha256).hexdigest()


class Skipped(Exception):
    """A check that cannot run against this deployment (say, no webhook secret given)."""


# ---------------------------------------------------------------- the happy path, in order


def service_is_up(s: Smoke) -> None:
    assert s.call(200, "GET", "/healthz").json()["status"] == "ok"
    s.call(200, "GET", "/readyz")


def create_product(s: Smoke) -> None:
    response = s.call(
        201,
        "POST",
        "/products",
        json={
            "sku": f"SMOKE-{s.run}-MUG",
            "name": f"  Smoke mug {s.run}  ",
            "price": 12.5,
            "stock": 10,
        },
    )
    product = response.json()
    assert response.headers["location"] == f"/products/{product['id']}"
    assert product["price"] == "12.50" and product["name"] == f"Smoke mug {s.run}", product
    s.state["product"] = product


def read_and_filter_products(s: Smoke) -> None:
    product = s.state["product"]
    response = s.call(200, "GET", f"/products/{product['id']}")
    assert response.json() == product and response.headers.get("etag")
    page = s.call(200, "GET", "/products", params={"sku": product["sku"]}).json()
    assert page["total"] == 1 and page["items"][0]["id"] == product["id"], page
    page = s.call(200, "GET", "/products", params={"q": f"MUG {s.run}", "in_stock": "true"}).json()
    assert [p["id"] for p in page["items"]] == [product["id"]], page


def sorted_products(s: Smoke) -> None:
    cheap, dear = s.new_product(price="3.00"), s.new_product(price="30.00")
    params = {"q": f"SMOKE-{s.run}", "sort": "-price", "limit": 1}
    first = s.call(200, "GET", "/products", params=params).json()
    rest = s.call(200, "GET", "/products", params={**params, "limit": 100, "after": first["next"]})
    walked = [p["id"] for p in first["items"] + rest.json()["items"]]
    assert walked[0] == dear["id"] and walked[-1] == cheap["id"], walked
    assert len(walked) == len(set(walked)) == first["total"], (walked, first)
    s.call(
        422,
        "GET",
        "/products",
        "invalid_cursor",
        params={**params, "sort": "price", "after": first["next"]},
    )


def unchanged_reads_are_304(s: Smoke) -> None:
    path = f"/products/{s.state['product']['id']}"
    etag = s.call(200, "GET", path).headers["etag"]
    for method in ("GET", "HEAD"):
        response = s.call(304, method, path, headers={"If-None-Match": etag})
        assert response.headers["etag"] == etag and response.content == b"", response.headers


def update_product(s: Smoke) -> None:
    product_id = s.state["product"]["id"]
    etag = s.call(200, "GET", f"/products/{product_id}").headers["etag"]
    updated = s.call(
        200, "PATCH", f"/products/{product_id}", json={"price": "9.99"}, headers={"If-Match": etag}
    ).json()
    assert updated["price"] == "9.99" and updated["stock"] == 10, updated


def place_order(s: Smoke) -> None:
    product_id = s.state["product"]["id"]
    response = s.call(
        201, "POST", "/orders", json={"items": [{"product_id": product_id, "quantity": 3}]}
    )
    order = response.json()
    assert response.headers["location"] == f"/orders/{order['id']}"
    assert order["status"] == "PENDING" and order["total"] == "29.97", order
    assert order["items"][0]["unit_price"] == "9.99", order
    assert s.stock(product_id) == 7
    listed = s.call(200, "GET", "/orders", params={"product_id": product_id}).json()
    assert [o["id"] for o in listed["items"]] == [order["id"]], listed
    etag = s.call(200, "GET", f"/orders/{order['id']}").headers["etag"]
    s.call(304, "GET", f"/orders/{order['id']}", headers={"If-None-Match": etag})
    by_total = s.call(200, "GET", "/orders", params={"sort": "-total", "limit": 100}).json()
    totals = [Decimal(o["total"]) for o in by_total["items"]]
    assert totals == sorted(totals, reverse=True), totals
    s.state["order"] = order


def pay_by_webhook(s: Smoke) -> None:
    order = s.state["order"]
    if not s.secret:
        s.call(200, "PUT", f"/orders/{order['id']}", json={"status": "PAID"})
        raise Skipped("WEBHOOK_SECRET not set: paid with PUT instead of the signed webhook")
    event = {
        "type": "payment.succeeded",
        "order_id": order["id"],
        "amount": order["total"],
        "payment_id": f"pay_{s.run}",
    }
    first = s.webhook(200, f"evt_smoke_{s.run}", event).json()
    assert first["duplicate"] is False and first["order_status"] == "PAID", first
    replay = s.webhook(200, f"evt_smoke_{s.run}", event).json()
    assert replay["duplicate"] is True, replay
    assert s.call(200, "GET", f"/orders/{order['id']}").json()["status"] == "PAID"


def pay_by_stripe(s: Smoke) -> None:
    """A PaymentIntent event as Stripe sends it pays its order once; other types are ignored."""
    if not s.stripe_secret:
        raise Skipped("STRIPE_WEBHOOK_SECRET not set")
    product = s.new_product(price="7.25")
    order = s.call(201, "POST", "/orders", json={"product_id": product["id"], "quantity": 2})
    cents = int(order.json()["total"].replace(".", ""))
    intent = {
        "id": f"pi_smoke_{s.run}",
        "object": "payment_intent",
        "amount": cents,
        "amount_received": cents,
        "currency": order.json()["currency"].lower(),
        "status": "succeeded",
        "metadata": {"order_id": str(order.json()["id"])},
    }
    event = {
        "id": f"evt_smoke_{s.run}",
        "object": "event",
        "type": "payment_intent.succeeded",
        "data": {"object": intent},
    }
    s.stripe_webhook(401, event, "invalid_signature", signature="0" * 64)
    first = s.stripe_webhook(200, event).json()
    assert first["duplicate"] is False and first["order_status"] == "PAID", first
    assert s.stripe_webhook(200, event).json()["duplicate"] is True
    other = {**event, "id": f"evt_smoke_other_{s.run}", "type": "customer.created"}
    assert s.stripe_webhook(200, other).json() == {"received": True, "ignored": True}


def ship_order(s: Smoke) -> None:
    """A partial shipment with tracking, then the rest: on_hand and committed fall together."""
    order_id, product_id = s.state["order"]["id"], s.state["product"]["id"]
    path = f"/orders/{order_id}/shipments"
    part = {
        "items": [{"product_id": product_id, "quantity": 1}],
        "carrier": "UPS",
        "tracking_number": f"1Z{s.run}",
        "tracking_url": f"https://www.ups.com/track?tracknum=1Z{s.run}",
    }
    key = {"Idempotency-Key": f"ship-{s.run}"}
    response = s.call(201, "POST", path, json=part, headers=key)
    first = response.json()
    assert response.headers["location"] == f"{path}/{first['id']}", response.headers
    assert first["items"] == [
        {"product_id": product_id, "sku": s.state["product"]["sku"], "quantity": 1}
    ], first
    replay = s.call(201, "POST", path, json=part, headers=key)
    assert replay.headers.get("idempotent-replayed") == "true" and replay.json() == first
    order = s.call(200, "GET", f"/orders/{order_id}").json()
    assert order["status"] == "PARTIALLY_SHIPPED", order
    assert order["items"][0]["quantity_shipped"] == 1, order
    product = s.call(200, "GET", f"/products/{product_id}").json()
    assert (product["on_hand"], product["committed"], product["available"]) == (9, 2, 7), product
    s.call(
        409,
        "POST",
        path,
        "exceeds_remaining",
        json={**part, "items": [{"product_id": product_id, "quantity": 3}]},
    )
    s.call(422, "POST", path, "validation_error", json={"tracking_url": "http://insecure"})
    rest = s.call(201, "POST", path, json={"carrier": "UPS"}).json()
    assert rest["items"][0]["quantity"] == 2, rest
    order = s.call(200, "GET", f"/orders/{order_id}").json()
    assert order["status"] == "SHIPPED" and order["items"][0]["quantity_shipped"] == 3, order
    product = s.call(200, "GET", f"/products/{product_id}").json()
    assert (product["on_hand"], product["committed"], product["available"]) == (7, 0, 7), product
    listed = s.call(200, "GET", path).json()
    assert [x["id"] for x in listed["items"]] == [first["id"], rest["id"]], listed
    assert s.call(200, "GET", f"{path}/{first['id']}").json() == first
    # As earlier clients ship: the status it has already, a no-op.
    shipped = s.call(200, "PUT", f"/orders/{order_id}", json={"status": "SHIPPED"}).json()
    assert shipped["status"] == "SHIPPED", shipped
    s.state["shipments"] = [first["id"], rest["id"]]


def cancel_restocks(s: Smoke) -> None:
    product_id = s.state["product"]["id"]
    order = s.call(201, "POST", "/orders", json={"product_id": product_id, "quantity": 4}).json()
    assert s.stock(product_id) == 3
    assert s.call(200, "DELETE", f"/orders/{order['id']}").json()["status"] == "CANCELED"
    assert s.stock(product_id) == 7
    canceled = s.call(200, "DELETE", f"/orders/{order['id']}").json()  # a second one: no-op
    assert canceled["cancel_reason"] == "requested", canceled
    assert s.stock(product_id) == 7


def restock_with_adjustment(s: Smoke) -> None:
    product_id = s.state["product"]["id"]
    body = {"delta": 5, "reason": "received", "reference": f"PO-{s.run}"}
    key = {"Idempotency-Key": f"restock-{s.run}"}
    path = f"/products/{product_id}/stock-adjustments"
    response = s.call(201, "POST", path, json=body, headers=key)
    movement = response.json()
    assert (
        response.headers["location"] == f"/products/{product_id}/stock-movements/{movement['id']}"
    )
    assert (movement["delta"], movement["reason"], movement["stock_after"]) == (5, "received", 12)
    replay = s.call(201, "POST", path, json=body, headers=key)
    assert replay.headers.get("idempotent-replayed") == "true" and replay.json() == movement
    assert s.stock(product_id) == 12
    history = s.call(200, "GET", f"/products/{product_id}/stock-movements").json()
    assert history["items"][0] == movement, history
    # The ledger adds up: stock is the sum of the movements, the newest one holds it.
    assert sum(m["delta"] for m in history["items"]) == 12, history


def count_the_shelf(s: Smoke) -> None:
    """A stocktake: a count that agrees is recorded (both deltas 0); one that finds a unit
    missing corrects on_hand by just that."""
    product_id = s.state["product"]["id"]
    path = f"/products/{product_id}/stock-counts"
    agrees = s.call(201, "POST", path, json={"on_hand": 12, "reference": f"STK-{s.run}"}).json()
    assert (agrees["reason"], agrees["on_hand_delta"], agrees["committed_delta"]) == (
        "counted",
        0,
        0,
    ), agrees
    key = {"Idempotency-Key": f"count-{s.run}"}
    short = s.call(201, "POST", path, json={"on_hand": 11}, headers=key).json()
    assert (short["on_hand_delta"], short["on_hand_after"], short["stock_after"]) == (-1, 11, 11)
    replay = s.call(201, "POST", path, json={"on_hand": 11}, headers=key)
    assert replay.headers.get("idempotent-replayed") == "true" and replay.json() == short
    assert s.stock(product_id) == 11
    s.call(
        422,
        "POST",
        path,
        "validation_error",
        json={"on_hand": 11, "counted_at": "2999-01-01T00:00:00Z"},
    )


def movements_by_reason(s: Smoke) -> None:
    product_id = s.state["product"]["id"]
    path = f"/products/{product_id}/stock-movements"
    shipped = s.call(200, "GET", path, params={"reason": "shipped"}).json()
    assert [m["shipment_id"] for m in shipped["items"]] == s.state["shipments"][::-1], shipped
    assert all(m["on_hand_delta"] == m["committed_delta"] < 0 for m in shipped["items"]), shipped
    both = s.call(200, "GET", path, params=[("reason", "counted"), ("reason", "received")]).json()
    assert [m["reason"] for m in both["items"]] == ["counted", "counted", "received"], both
    s.call(422, "GET", path, "validation_error", params={"reason": "restocked"})
    history = s.call(200, "GET", path, params={"limit": 100}).json()["items"]
    assert sum(m["on_hand_delta"] for m in history) == history[0]["on_hand_after"] == 11
    assert sum(m["committed_delta"] for m in history) == history[0]["committed_after"] == 0


def export_and_import_the_catalog(s: Smoke) -> None:
    """Export (NDJSON), then a dry run of that export: every row unchanged, nothing written."""
    exported = s.call(200, "GET", "/products/export")
    version = exported.headers["etag"].strip('"')
    lines = exported.text.splitlines()
    assert any(f'"sku":"{s.state["product"]["sku"]}"' in line for line in lines), lines[:3]
    ndjson = {"Content-Type": "application/x-ndjson"}
    path = "/products/import"
    report = s.call(
        200, "POST", path, params={"dry_run": "true"}, content=exported.content, headers=ndjson
    ).json()
    assert report["errors"] == [] and report["created"] == report["updated"] == 0, report
    # Other clients may share the server: the version holds unless something changed meanwhile.
    assert report["unchanged"] >= 1 and len(report["catalog_version"]) == len(version), report
    csv = s.call(200, "GET", "/products/export", params={"format": "csv"})
    assert csv.text.startswith("id,sku,name,description,price,on_hand,"), csv.text[:200]


def bad_imports_change_nothing(s: Smoke) -> None:
    path = "/products/import"
    s.call(
        415,
        "POST",
        path,
        "unsupported_media_type",
        content=b'{"sku": "X"}',
        headers={"Content-Type": "application/json"},
    )
    body = f'{{"sku": "SMOKE-{s.run}-BAD", "name": "Bad", "price": -1}}\n'.encode()
    problem = s.call(
        422,
        "POST",
        path,
        "import_invalid",
        content=body,
        headers={"Content-Type": "application/x-ndjson"},
    ).json()
    assert [(e["row"], e["loc"]) for e in problem["errors"]] == [(1, ["price"])], problem
    listed = s.call(200, "GET", "/products", params={"sku": f"SMOKE-{s.run}-BAD"}).json()
    assert listed["items"] == [], listed


def orders_filtered_by_creation_time(s: Smoke) -> None:
    order = s.state["order"]
    created = order["created_at"]
    params = {"product_id": s.state["product"]["id"], "created_after": created}
    listed = s.call(200, "GET", "/orders", params=params).json()
    assert order["id"] in [o["id"] for o in listed["items"]], listed
    params = {"product_id": s.state["product"]["id"], "created_before": created}
    listed = s.call(200, "GET", "/orders", params=params).json()
    assert order["id"] not in [o["id"] for o in listed["items"]], listed


def order_with_charges_and_links(s: Smoke) -> None:
    """An order as a storefront places it: shipping, tax and a discount it computed, its own
    id, the customer and metadata; the same external_id again is 409 naming the order; a
    metadata PATCH merges (null removes); the list finds it by each of them."""
    product = s.new_product(stock=5, price="20.00")
    external_id = f"shop-{s.run}"
    body = {
        "items": [{"product_id": product["id"], "quantity": 2}],
        "charges": [
            {"kind": "shipping", "amount": "4.99", "label": "Standard"},
            {"kind": "tax", "amount": "3.20"},
            {"kind": "discount", "amount": "5.00", "label": "WELCOME5"},
        ],
        "external_id": external_id,
        "customer": {"email": f"Smoke-{s.run}@Example.com", "name": "Smoke Test"},
        "metadata": {"channel": "web", "cart": s.run},
    }
    order = s.call(201, "POST", "/orders", json=body).json()
    assert (order["subtotal"], order["total"]) == ("40.00", "43.19"), order
    assert [c["amount"] for c in order["charges"]] == ["4.99", "3.20", "5.00"], order
    assert order["customer"] == {"email": f"smoke-{s.run}@example.com", "name": "Smoke Test"}
    assert (order["payment_status"], order["amount_refundable"]) == ("unpaid", "0.00"), order
    again = s.call(409, "POST", "/orders", "external_id_conflict", json=body).json()
    assert again["order_id"] == order["id"], again
    patch = {"metadata": {"cart": None, "gift": "yes"}}
    changed = s.call(200, "PATCH", f"/orders/{order['id']}", json=patch).json()
    assert changed["metadata"] == {"channel": "web", "gift": "yes"}, changed
    for params in (
        {"external_id": external_id},
        {"customer_email": f"SMOKE-{s.run}@example.com"},
        {"q": external_id},
    ):
        listed = s.call(200, "GET", "/orders", params=params).json()
        assert [o["id"] for o in listed["items"]] == [order["id"]], (params, listed)


def refund_an_order(s: Smoke) -> None:
    """A paid order refunded for one unit (released, unshipped), then the provider reports the
    same refund: recorded once; a refund past what was paid is 409."""
    if not s.secret:
        raise Skipped("WEBHOOK_SECRET not set: an order is paid only through the signed webhook")
    product = s.new_product(stock=5, price="10.00")
    order = s.call(
        201, "POST", "/orders", json={"items": [{"product_id": product["id"], "quantity": 2}]}
    ).json()
    paid = {
        "type": "payment.succeeded",
        "order_id": order["id"],
        "amount": order["total"],
        "payment_id": f"pay_refund_{s.run}",
    }
    assert s.webhook(200, f"evt_smoke_refund_paid_{s.run}", paid).json()["order_status"] == "PAID"
    body = {
        "items": [{"product_id": product["id"], "quantity": 1}],
        "provider_refund_id": f"re_smoke_{s.run}",
    }
    refund = s.call(201, "POST", f"/orders/{order['id']}/refunds", json=body).json()
    assert (refund["amount"], refund["source"]) == ("10.00", "api"), refund
    reported = {
        **paid,
        "type": "payment.refunded",
        "amount": "10.00",
        "refund_id": body["provider_refund_id"],
    }
    assert s.webhook(200, f"evt_smoke_refund_{s.run}", reported).json()["duplicate"] is True
    s.call(
        409,
        "POST",
        f"/orders/{order['id']}/refunds",
        "refund_exceeds_paid",
        json={"amount": "10.01"},
    )
    shown = s.call(200, "GET", f"/orders/{order['id']}").json()
    assert (shown["amount_refunded"], shown["payment_status"]) == ("10.00", "partially_refunded")
    assert shown["items"][0]["quantity_released"] == 1, shown


def archive_product(s: Smoke) -> None:
    product_id = s.state["product"]["id"]
    s.call(204, "DELETE", f"/products/{product_id}")
    s.call(404, "GET", f"/products/{product_id}", "product_not_found")
    order = s.call(200, "GET", f"/orders/{s.state['order']['id']}").json()
    assert order["items"][0]["sku"] == s.state["product"]["sku"], order


def manage_a_subscription(s: Smoke) -> None:
    if not s.event_receiver_url:
        raise Skipped("EVENT_RECEIVER_URL not set")
    body = {"url": s.event_receiver_url, "types": ["order.paid"], "description": f"smoke {s.run}"}
    created = s.call(201, "POST", "/event-subscriptions", json=body).json()
    path = f"/event-subscriptions/{created['id']}"
    try:
        paused = s.call(200, "PATCH", path, json={"enabled": False}).json()
        assert paused["enabled"] is False and paused["types"] == ["order.paid"], paused
        assert s.call(200, "PATCH", path, json={"enabled": True}).json()["enabled"] is True
        rotated = s.call(
            200, "POST", f"{path}/rotate-secret", json={"expire_old_after_seconds": 60}
        )
        assert rotated.json()["secret"].startswith("whsec_"), rotated.text
        assert rotated.json()["secret"] != created["secret"]
        assert rotated.json()["previous_secret_expires_at"], rotated.text
        ping = s.call(200, "POST", f"{path}/test").json()
        assert ping["event_id"].startswith("evt_") and isinstance(ping["delivered"], bool), ping
    finally:
        s.call(204, "DELETE", path)


HAPPY_PATH = [
    service_is_up,
    create_product,
    read_and_filter_products,
    sorted_products,
    unchanged_reads_are_304,
    update_product,
    place_order,
    pay_by_webhook,
    pay_by_stripe,
    ship_order,
    cancel_restocks,
    restock_with_adjustment,
    count_the_shelf,
    movements_by_reason,
    export_and_import_the_catalog,
    manage_a_subscription,
    orders_filtered_by_creation_time,
    order_with_charges_and_links,
    refund_an_order,
    archive_product,
]


# ---------------------------------------------------------------- error cases, each alone


def unknown_ids_are_404(s: Smoke) -> None:
    s.call(404, "GET", "/products/2147483647", "product_not_found")
    s.call(404, "GET", "/orders/2147483647", "order_not_found")
    s.call(404, "GET", "/no-such-route", "not_found")
    s.call(
        404, "POST", "/orders", "product_not_found", json={"product_id": 2147483647, "quantity": 1}
    )


def invalid_bodies_are_422(s: Smoke) -> None:
    problem = s.call(
        422,
        "POST",
        "/products",
        "validation_error",
        json={"sku": "ok-sku", "name": "x", "price": "1.999"},
    ).json()
    assert problem["errors"] and {"loc", "msg", "type"} <= set(problem["errors"][0]), problem
    s.call(
        422,
        "POST",
        "/products",
        "validation_error",
        json={"sku": "ok-sku", "name": "x", "price": 1, "colour": "red"},
    )
    s.call(422, "GET", "/products", "validation_error", params={"limit": 0})


def malformed_json_is_400(s: Smoke) -> None:
    s.call(
        400,
        "POST",
        "/products",
        "bad_request",
        content=b'{"sku": ',
        headers={"Content-Type": "application/json"},
    )


def duplicate_sku_is_409(s: Smoke) -> None:
    product = s.new_product()
    s.call(
        409,
        "POST",
        "/products",
        "sku_conflict",
        json={"sku": product["sku"], "name": "Again", "price": "1.00"},
    )


def over_order_is_409_and_moves_nothing(s: Smoke) -> None:
    product = s.new_product(stock=2)
    problem = s.call(
        409,
        "POST",
        "/orders",
        "insufficient_stock",
        json={"product_id": product["id"], "quantity": 5},
    ).json()
    assert (problem["product_id"], problem["requested"], problem["available"]) == (
        product["id"],
        5,
        2,
    ), problem
    assert s.stock(product["id"]) == 2


def invalid_transition_is_409(s: Smoke) -> None:
    product = s.new_product()
    order = s.call(201, "POST", "/orders", json={"product_id": product["id"], "quantity": 1})
    order_id = order.json()["id"]
    s.call(200, "DELETE", f"/orders/{order_id}")
    problem = s.call(
        409, "PUT", f"/orders/{order_id}", "invalid_status_transition", json={"status": "PAID"}
    ).json()
    assert (problem["from"], problem["to"], problem["allowed"]) == ("CANCELED", "PAID", []), problem


def stale_if_match_is_412(s: Smoke) -> None:
    product = s.new_product()
    s.call(
        412,
        "PATCH",
        f"/products/{product['id']}",
        "precondition_failed",
        json={"stock": 1},
        headers={"If-Match": '"not-the-etag"'},
    )
    assert s.stock(product["id"]) == 10
    order = s.call(
        201, "POST", "/orders", json={"items": [{"product_id": product["id"], "quantity": 1}]}
    ).json()
    etag = s.call(200, "GET", f"/orders/{order['id']}").headers["etag"]
    problem = s.call(
        412,
        "DELETE",
        f"/orders/{order['id']}",
        "precondition_failed",
        headers={"If-Match": '"not-the-etag"'},
    ).json()
    assert problem["etag"] == etag, problem
    assert s.call(200, "GET", f"/orders/{order['id']}").json()["status"] == "PENDING"


def bad_webhooks_are_401(s: Smoke) -> None:
    if not s.secret:
        raise Skipped("WEBHOOK_SECRET not set")
    product = s.new_product()
    order = s.call(201, "POST", "/orders", json={"product_id": product["id"], "quantity": 1})
    event = {
        "type": "payment.succeeded",
        "order_id": order.json()["id"],
        "amount": order.json()["total"],
        "payment_id": f"pay_{s.run}_bad",
    }
    s.webhook(
        401, f"evt_forged_{s.run}", event, "invalid_signature", signature="sha256=" + "0" * 64
    )
    s.webhook(
        401, f"evt_stale_{s.run}", event, "stale_timestamp", timestamp=int(time.time()) - 3600
    )
    s.webhook(422, f"evt_amount_{s.run}", {**event, "amount": "0.01"}, "amount_mismatch")
    assert s.call(200, "GET", f"/orders/{order.json()['id']}").json()["status"] == "PENDING"


def bad_adjustments_change_nothing(s: Smoke) -> None:
    product = s.new_product(stock=3)
    path = f"/products/{product['id']}/stock-adjustments"
    problem = s.call(
        409, "POST", path, "insufficient_stock", json={"delta": -4, "reason": "lost"}
    ).json()
    assert (problem["requested"], problem["available"]) == (4, 3), problem
    s.call(422, "POST", path, "validation_error", json={"delta": 0, "reason": "received"})
    s.call(422, "POST", path, "validation_error", json={"delta": 1, "reason": "found"})
    s.call(
        404,
        "POST",
        "/products/2147483647/stock-adjustments",
        "product_not_found",
        json={"delta": 1, "reason": "received"},
    )
    s.call(
        422,
        "GET",
        f"/products/{product['id']}/stock-movements",
        "invalid_cursor",
        params={"after": "not-a-cursor"},
    )
    s.call(422, "GET", "/orders", "validation_error", params={"created_after": "yesterday"})
    assert s.stock(product["id"]) == 3


def unknown_subscriptions_are_404(s: Smoke) -> None:
    missing = "/event-subscriptions/2147483647"
    s.call(404, "PATCH", missing, "not_found", json={"enabled": False})
    s.call(404, "POST", f"{missing}/rotate-secret", "not_found")
    s.call(404, "POST", f"{missing}/deliveries/1/retry", "not_found")


ERROR_CASES = [
    unknown_ids_are_404,
    invalid_bodies_are_422,
    malformed_json_is_400,
    duplicate_sku_is_409,
    over_order_is_409_and_moves_nothing,
    invalid_transition_is_409,
    stale_if_match_is_412,
    bad_webhooks_are_401,
    bad_adjustments_change_nothing,
    bad_imports_change_nothing,
    unknown_subscriptions_are_404,
]


# ---------------------------------------------------------------- running them


def run_checks(
    smoke: Smoke,
    checks: list[Callable[[Smoke], None]],
    *,
    stop_on_failure: bool,
    report: Callable[[str], None] = print,
) -> dict[str, list[str]]:
    """Runs checks in order, reporting each; returns the names by outcome."""
    outcomes: dict[str, list[str]] = {"passed": [], "failed": [], "skipped": []}
    for check in checks:
        name = check.__name__.replace("_", " ")
        if outcomes["failed"] and stop_on_failure:
            outcomes["skipped"].append(name)
            report(f"SKIP  {name} (an earlier step failed)")
            continue
        started = time.monotonic()
        try:
            check(smoke)
        except Skipped as why:
            outcomes["skipped"].append(name)
            report(f"SKIP  {name}: {why}")
        except (AssertionError, httpx.HTTPError, KeyError, ValueError) as error:
            outcomes["failed"].append(f"{name}: {type(error).__name__}: {error}")
            report(f"FAIL  {name}: {type(error).__name__}: {error}")
        else:
            outcomes["passed"].append(name)
            report(f"PASS  {name} ({time.monotonic() - started:.2f} s)")
    return outcomes


def _smoke_for(server: Any) -> Smoke:
    return Smoke(
        server.base_url,
        server.env.get("API_KEY", ""),
        server.env["WEBHOOK_SECRET"],
        server.env.get("STRIPE_WEBHOOK_SECRET", ""),
        server.env.get("EVENT_RECEIVER_URL", ""),
    )


# Under pytest the server has a webhook secret, so nothing may be skipped either.
def test_smoke_happy_path(client_server: Any) -> None:
    outcomes = run_checks(_smoke_for(client_server), HAPPY_PATH, stop_on_failure=True)
    assert outcomes["passed"] == [c.__name__.replace("_", " ") for c in HAPPY_PATH], outcomes


def test_smoke_error_cases(client_server: Any) -> None:
    outcomes = run_checks(_smoke_for(client_server), ERROR_CASES, stop_on_failure=False)
    assert outcomes["passed"] == [c.__name__.replace("_", " ") for c in ERROR_CASES], outcomes


def main() -> int:
    base_url = os.environ.get("BASE_URL", "http://127.0.0.1:8000")
    smoke = Smoke(
        base_url,
        os.environ.get("API_KEY", ""),
        os.environ.get("WEBHOOK_SECRET", ""),
        os.environ.get("STRIPE_WEBHOOK_SECRET", ""),
        os.environ.get("EVENT_RECEIVER_URL", ""),
    )
    print(f"Smoke tests against {base_url} (run {smoke.run})\n\nHappy path:")
    happy = run_checks(smoke, HAPPY_PATH, stop_on_failure=True)
    print("\nError cases:")
    errors = run_checks(smoke, ERROR_CASES, stop_on_failure=False)
    counts = {outcome: len(happy[outcome]) + len(errors[outcome]) for outcome in happy}
    print(f"\n{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
    for failure in happy["failed"] + errors["failed"]:
        print(f"  - {failure}")
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
