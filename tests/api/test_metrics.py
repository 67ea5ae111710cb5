"""Metrics: place and refuse orders over HTTP, then read the counters back from /metrics."""

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.core import metrics


def scrape(client: TestClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(before: dict, after: dict, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def new_product(client: TestClient, stock: int) -> int:
    response = client.post(
        "/products",
        json={"sku": f"M-{stock}-{id(client)}", "name": "Mug", "price": "2.50", "stock": stock},
    )
    assert response.status_code == 201
    return response.json()["id"]


def test_orders_placed_and_rejected_by_reason_are_counted(client: TestClient):
    product_id = new_product(client, stock=3)
    before = scrape(client)

    assert client.post("/orders", json={"product_id": product_id, "quantity": 2}).status_code == 201
    assert client.post("/orders", json={"product_id": product_id, "quantity": 1}).status_code == 201
    assert client.post("/orders", json={"product_id": product_id, "quantity": 5}).status_code == 409
    assert client.post("/orders", json={"product_id": 999_999, "quantity": 1}).status_code == 404
    assert client.post("/orders", json={"product_id": product_id}).status_code == 422
    assert (
        client.post(
            "/orders", content=b"{not json", headers={"content-type": "application/json"}
        ).status_code
        == 400
    )

    after = scrape(client)
    assert delta(before, after, "orders_placed_total") == 2
    assert delta(before, after, "orders_rejected_total", reason="insufficient_stock") == 1
    assert delta(before, after, "orders_rejected_total", reason="product_not_found") == 1
    assert delta(before, after, "orders_rejected_total", reason="validation") == 2
    assert delta(before, after, "stock_rejections_total") == 1


def test_requests_are_counted_by_route_template_method_and_status(client: TestClient):
    product_id = new_product(client, stock=5)
    order_id = client.post("/orders", json={"product_id": product_id, "quantity": 1}).json()["id"]
    before = scrape(client)

    assert client.get(f"/orders/{order_id}").status_code == 200
    assert client.get("/orders/999999").status_code == 404
    assert client.delete(f"/orders/{order_id}").status_code == 200
    assert client.get(f"/no/such/route/{order_id}").status_code == 404

    after = scrape(client)
    template = "/orders/{order_id}"
    assert (
        delta(before, after, "http_requests_total", method="GET", route=template, status="200") == 1
    )
    assert (
        delta(before, after, "http_requests_total", method="GET", route=template, status="404") == 1
    )
    assert (
        delta(
            before,
            after,
            "http_request_duration_seconds_count",
            method="DELETE",
            route=template,
            status="200",
        )
        == 1
    )
    assert (
        delta(
            before,
            after,
            "http_request_duration_seconds_bucket",
            method="DELETE",
            route=template,
            status="200",
            le="+Inf",
        )
        == 1
    )
    assert (
        delta(before, after, "http_requests_total", method="GET", route="unmatched", status="404")
        == 1
    )
    assert delta(before, after, "order_status_changes_total", status="CANCELED") == 1
    routes = {dict(labels).get("route") for _, labels in after}
    assert not any(route and str(order_id) in route for route in routes), routes


def test_unknown_methods_share_one_label(client: TestClient):
    before = scrape(client)
    client.request("BREW", "/products")
    after = scrape(client)
    assert (
        delta(before, after, "http_requests_total", method="OTHER", route="/products", status="405")
        == 1
    )


def test_every_labelled_series_exists_before_its_first_event(client: TestClient):
    samples = scrape(client)
    for outcome in metrics.WEBHOOK_OUTCOMES:
        assert ("webhook_deliveries_total", frozenset({("outcome", outcome)})) in samples
        for provider in ("payment", "stripe"):
            labels = frozenset({("provider", provider), ("outcome", outcome)})
            assert ("webhook_deliveries_by_provider_total", labels) in samples
    for reason in metrics.ORDER_REJECTION_REASONS:
        assert ("orders_rejected_total", frozenset({("reason", reason)})) in samples
    assert ("db_pool_checked_out_connections", frozenset()) in samples
    assert ("db_pool_max_connections", frozenset()) in samples


def test_webhook_delivery_counts_each_outcome(client: TestClient):
    before = scrape(client)
    metrics.webhook_delivery("processed")
    metrics.webhook_delivery("duplicate")
    metrics.webhook_delivery("duplicate")
    after = scrape(client)
    assert delta(before, after, "webhook_deliveries_total", outcome="processed") == 1
    assert delta(before, after, "webhook_deliveries_total", outcome="duplicate") == 2
    assert delta(before, after, "webhook_deliveries_total", outcome="stale") == 0


@pytest.mark.parametrize(
    "call",
    [
        lambda: metrics.webhook_delivery("exploded"),
        lambda: metrics.webhook_delivery("processed", "paypal"),
        lambda: metrics.order_rejected("because"),
    ],
)
def test_unknown_label_values_are_refused(call):
    with pytest.raises(ValueError):
        call()


def test_multiprocess_dir_only_in_settings_is_reported(caplog, monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    metrics.setup("/tmp/not-in-the-environment")
    assert "PROMETHEUS_MULTIPROC_DIR is set in .env only" in caplog.text


def test_webhook_deliveries_are_counted_by_outcome(settings, engine, db):
    from pydantic import SecretStr

    from app.main import create_app
    from tests.support.factories import make_order, make_product
    from tests.support.webhooks import SECRET, deliver, event_body

    configured = settings.model_copy(update={"webhook_secret": SecretStr(SECRET)})
    client = TestClient(create_app(configured, engine))
    order = make_order(db, (make_product(db, stock=5), 1))
    before = scrape(client)

    assert deliver(client, event_body(order), event_id="evt-m-1").status_code == 200
    assert deliver(client, event_body(order), event_id="evt-m-1").status_code == 200
    assert deliver(client, event_body(order), secret="not-the-secret").status_code == 401
    assert deliver(client, event_body(order), timestamp=1).status_code == 401
    assert deliver(client, event_body(order, amount="0.01")).status_code == 422
    assert deliver(client, b"{not json").status_code == 400

    after = scrape(client)
    expected = {"processed": 1, "duplicate": 1, "bad_signature": 1, "stale": 1, "rejected": 2}
    for outcome, count in expected.items():
        assert delta(before, after, "webhook_deliveries_total", outcome=outcome) == count, outcome


def test_each_providers_deliveries_are_counted_apart_and_together(settings, engine, db):
    from pydantic import SecretStr

    from app.main import create_app
    from tests.support.factories import make_order, make_product
    from tests.support.stripe_events import STRIPE_SECRET, deliver_stripe, stripe_event, succeeded
    from tests.support.webhooks import SECRET, deliver, event_body

    configured = settings.model_copy(
        update={
            "webhook_secret": SecretStr(SECRET),
            "stripe_webhook_secret": SecretStr(STRIPE_SECRET),
        }
    )
    client = TestClient(create_app(configured, engine))
    mug = make_product(db, stock=5)
    paid_by_stripe, paid_by_webhook = make_order(db, (mug, 1)), make_order(db, (mug, 1))
    before = scrape(client)

    body = succeeded(paid_by_stripe)
    assert deliver_stripe(client, body).status_code == 200
    assert deliver_stripe(client, body).json()["duplicate"] is True
    assert deliver_stripe(client, stripe_event("customer.created", {"id": "cus_1"})).status_code
    assert deliver_stripe(client, body, secret="whsec_wrong", check_with_stripe=False).status_code
    assert deliver_stripe(client, b"{not json", check_with_stripe=False).status_code == 400
    assert deliver(client, event_body(paid_by_webhook)).status_code == 200

    after = scrape(client)
    by_provider = "webhook_deliveries_by_provider_total"
    stripe_counts = {"processed": 1, "duplicate": 1, "ignored": 1, "bad_signature": 1}
    for outcome, count in {**stripe_counts, "rejected": 1, "stale": 0}.items():
        assert delta(before, after, by_provider, provider="stripe", outcome=outcome) == count
    assert delta(before, after, by_provider, provider="payment", outcome="processed") == 1
    assert delta(before, after, by_provider, provider="payment", outcome="ignored") == 0
    # The series dashboards read before there were two webhooks: every provider's together.
    assert delta(before, after, "webhook_deliveries_total", outcome="processed") == 2
    assert delta(before, after, "webhook_deliveries_total", outcome="rejected") == 1
