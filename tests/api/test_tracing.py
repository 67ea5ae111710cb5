"""Traces, on both engines, with an in-memory exporter (nothing leaves the process): a request
is a span child of the caller's `traceparent`, each unit of work a span child of the request's,
the access line carries the trace id, and an event's delivery sends the trace on."""

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import Engine

from app.core.config import Settings
from app.main import create_app
from tests.support.collector import Collector
from tests.support.event_receiver import Receiver, subscribe
from tests.support.factories import Db, product_body
from tests.support.serving import serving

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN_ID}-01"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def traced_client(
    settings: Settings, engine: Engine, exporter: InMemorySpanExporter
) -> Iterator[TestClient]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    configured = settings.model_copy(update={"event_allow_private_urls": True})
    with serving(create_app(configured, engine, tracer_provider=provider)) as client:
        yield client
    provider.shutdown()


def hex_id(number: int, digits: int) -> str:
    return format(number, f"0{digits}x")


def named(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, [span.name for span in spans]
    return found[0]


def test_a_request_is_a_span_of_the_callers_trace_and_its_unit_of_work_a_span_of_it(
    traced_client: TestClient, exporter: InMemorySpanExporter, capsys: pytest.CaptureFixture[str]
):
    capsys.readouterr()
    created = traced_client.post(
        "/products", json=product_body(), headers={"traceparent": TRACEPARENT}
    )
    assert created.status_code == 201, created.text

    spans = exporter.get_finished_spans()
    request = named(spans, "POST /products")
    unit = named(spans, "db.write create_product")
    assert request.kind is SpanKind.SERVER
    assert hex_id(request.context.trace_id, 32) == TRACE_ID
    assert request.parent is not None and hex_id(request.parent.span_id, 16) == CALLER_SPAN_ID
    assert request.attributes["http.response.status_code"] == 201
    assert unit.kind is SpanKind.CLIENT
    assert unit.parent is not None and unit.parent.span_id == request.context.span_id
    assert unit.context.trace_id == request.context.trace_id
    assert unit.attributes["db.system.name"] == traced_client.app.state.database.dialect
    access = [
        line
        for line in map(json.loads, capsys.readouterr().err.splitlines())
        if line.get("logger") == "app.access" and line.get("route") == "/products"
    ]
    assert [line.get("trace_id") for line in access] == [TRACE_ID]


def test_a_request_without_traceparent_starts_a_trace_and_probes_make_no_span(
    traced_client: TestClient, exporter: InMemorySpanExporter
):
    assert traced_client.get("/healthz").status_code == 200
    assert traced_client.get("/products/999").status_code == 404

    spans = exporter.get_finished_spans()
    request = named(spans, "GET /products/{product_id}")
    assert request.parent is None and request.context.trace_id != int(TRACE_ID, 16)
    assert named(spans, "db.read get_product").parent.span_id == request.context.span_id
    assert not [span for span in spans if "healthz" in span.name]


def test_a_trace_the_caller_left_unsampled_records_no_span_but_is_carried_on(
    traced_client: TestClient, exporter: InMemorySpanExporter
):
    unsampled = f"00-{TRACE_ID}-{CALLER_SPAN_ID}-00"
    receiver = Receiver()
    with receiver.running():
        subscribe(traced_client, receiver, "/orders", ["order.created"])
        product = traced_client.post("/products", json=product_body()).json()
        exporter.clear()
        placed = traced_client.post(
            "/orders",
            json={"product_id": product["id"], "quantity": 1},
            headers={"traceparent": unsampled},
        )
        assert placed.status_code == 201, placed.text
        assert receiver.wait_for(lambda: len(receiver.at("/orders")) == 1, timeout=15)
        (received,) = receiver.at("/orders")

    assert exporter.get_finished_spans() == ()
    version, trace_id, _, flags = received.headers["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", TRACE_ID, "00")


def test_an_events_delivery_carries_the_trace_of_the_request_that_recorded_it(
    traced_client: TestClient, exporter: InMemorySpanExporter
):
    receiver = Receiver()
    with receiver.running():
        subscribe(traced_client, receiver, "/orders", ["order.created"])
        product = traced_client.post("/products", json=product_body()).json()
        placed = traced_client.post(
            "/orders",
            json={"product_id": product["id"], "quantity": 1},
            headers={"traceparent": TRACEPARENT},
        )
        assert placed.status_code == 201, placed.text
        assert receiver.wait_for(lambda: len(receiver.at("/orders")) == 1, timeout=15)
        (received,) = receiver.at("/orders")

    assert received.verified and received.event["data"]["order"]["id"] == placed.json()["id"]
    version, trace_id, span_id, flags = received.headers["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", TRACE_ID, "01")
    spans = exporter.get_finished_spans()
    request = named(spans, "POST /orders")
    (recording,) = [s for s in spans if s.parent and s.parent.span_id == request.context.span_id]
    delivery = named(spans, "event delivery order.created")
    # The receiver's parent is the delivery's span, whose parent is the unit that recorded it.
    assert hex_id(delivery.context.span_id, 16) == span_id
    assert delivery.kind is SpanKind.CLIENT
    assert delivery.parent is not None and delivery.parent.span_id == recording.context.span_id
    assert delivery.attributes["http.response.status_code"] == 200


def test_with_tracing_off_no_trace_is_kept_logged_or_sent(
    settings: Settings, engine: Engine, db: Db, capsys: pytest.CaptureFixture[str]
):
    configured = settings.model_copy(update={"event_allow_private_urls": True})
    receiver = Receiver()
    with receiver.running(), serving(create_app(configured, engine)) as client:
        subscribe(client, receiver, "/orders", ["order.created"])
        product = client.post("/products", json=product_body()).json()
        capsys.readouterr()
        placed = client.post(
            "/orders",
            json={"product_id": product["id"], "quantity": 1},
            headers={"traceparent": TRACEPARENT},
        )
        assert placed.status_code == 201, placed.text
        assert receiver.wait_for(lambda: len(receiver.at("/orders")) == 1, timeout=15)

    (received,) = receiver.at("/orders")
    assert received.verified and "traceparent" not in received.headers
    # The order's event and its product's: none carries a trace.
    assert db.rows("SELECT DISTINCT traceparent FROM events") == [{"traceparent": None}]
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    access = [line for line in lines if line.get("logger") == "app.access"]
    assert access and not [line for line in access if "trace_id" in line]


def test_the_otel_variables_send_the_spans_over_otlp_when_the_service_stops(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
):
    with Collector() as collector:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
        monkeypatch.setenv("OTEL_SERVICE_NAME", "shop-orders")
        with serving(create_app(settings, engine)) as client:
            created = client.post("/products", json=product_body())
            assert created.status_code == 201, created.text
        posts = list(collector.posts)  # the batch goes out as the service stops

    assert posts, "nothing was exported"
    assert {(path, kind) for path, kind, _ in posts} == {("/v1/traces", "application/x-protobuf")}
    sent = collector.sent()
    assert b"shop-orders" in sent
    assert b"POST /products" in sent and b"db.write create_product" in sent
