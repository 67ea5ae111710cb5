"""Which `OTEL_*` variables turn traces on (app/core/tracing.py): off by default, on with an OTLP
endpoint or OTEL_TRACES_EXPORTER=otlp, and a setting this service cannot honour refused at
start rather than tracing nothing silently. Nothing is exported here: no span is made."""

import pytest
from opentelemetry.sdk.resources import SERVICE_NAME

from app.core import tracing

ENDPOINT = "http://127.0.0.1:9"  # nothing listens, and nothing is sent


def provider_with(monkeypatch: pytest.MonkeyPatch, **variables: str) -> object:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    provider = tracing.provider_from_environment()
    if provider is not None:
        provider.shutdown()
    return provider


def test_traces_are_off_without_any_otel_variable(monkeypatch: pytest.MonkeyPatch):
    assert provider_with(monkeypatch) is None


@pytest.mark.parametrize(
    "variables",
    [
        {"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT},
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{ENDPOINT}/v1/traces"},
        {"OTEL_TRACES_EXPORTER": "otlp"},
        {"OTEL_TRACES_EXPORTER": "OTLP", "OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT},
    ],
)
def test_an_otlp_endpoint_or_exporter_turns_traces_on(monkeypatch, variables):
    assert provider_with(monkeypatch, **variables) is not None


@pytest.mark.parametrize(
    "variables",
    [
        {"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_TRACES_EXPORTER": "none"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_SDK_DISABLED": "true"},
    ],
)
def test_traces_stay_off_when_the_variables_say_so(monkeypatch, variables):
    assert provider_with(monkeypatch, **variables) is None


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"OTEL_TRACES_EXPORTER": "console"}, "OTEL_TRACES_EXPORTER"),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "PROTOCOL"),
    ],
)
def test_an_exporter_or_transport_not_supported_stops_the_start(monkeypatch, variables, named):
    with pytest.raises(ValueError, match=named):
        provider_with(monkeypatch, **variables)


def test_the_service_name_is_ours_unless_the_environment_names_one(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", ENDPOINT)
    ours = tracing.provider_from_environment()
    monkeypatch.setenv("OTEL_SERVICE_NAME", "shop-orders")
    named = tracing.provider_from_environment()
    assert ours is not None and named is not None
    ours.shutdown()
    named.shutdown()
    assert ours.resource.attributes[SERVICE_NAME] == "orders-inventory"
    assert named.resource.attributes[SERVICE_NAME] == "shop-orders"


def test_a_delivery_sends_the_recorded_traceparent_on_as_it_is_when_tracing_is_off_here():
    recorded = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    with tracing.sending(None, recorded, "event delivery order.paid") as sent:
        assert sent == recorded
    with tracing.sending(None, None, "event delivery order.paid") as sent:
        assert sent is None


def test_a_delivery_traced_here_sends_its_own_span_in_the_recorded_trace():
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    recorded = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    with tracing.sending(provider.get_tracer("test"), recorded, "event delivery") as sent:
        pass
    (span,) = exporter.get_finished_spans()
    assert sent == f"00-4bf92f3577b34da6a3ce929d0e0e4736-{span.context.span_id:016x}-01"
    assert span.parent is not None and span.parent.span_id == 0x00F067AA0BA902B7
