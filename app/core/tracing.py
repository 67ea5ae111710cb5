"""Traces (OpenTelemetry), off unless the standard `OTEL_*` variables ask for them.

On (an OTLP endpoint set, or OTEL_TRACES_EXPORTER=otlp): FastAPI's own bridge makes a span per
request, child of the caller's W3C `traceparent` (app/main.py); the seam a span per unit of
work inside a trace (app/db/traced.py); the outbox keeps the `traceparent` current when an event
is recorded (app/events/outbox.py) and each delivery of it is a span that sends its own on
(app/events/delivery.py); the access line carries the trace id. Spans leave in batches over
OTLP/HTTP, configured by the SDK's own variables (endpoint, headers, timeout, sampler,
resource). Off: none of that code runs; what is left is a check per event recorded and per
delivery (bench/README.md "Traces").
"""

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:  # the SDK is imported only when traces are on (bench/README.md "Traces")
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

# service.name when neither OTEL_SERVICE_NAME nor OTEL_RESOURCE_ATTRIBUTES names one.
DEFAULT_SERVICE_NAME = "orders-inventory"
# The requests that get no span: probes and scrapes, every few seconds, would drown the rest.
UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_W3C = TraceContextTextMapPropagator()


def provider_from_environment() -> "TracerProvider | None":
    """The pipeline the `OTEL_*` variables ask for, or None (tracing off). On: an OTLP endpoint
    is set (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT), or
    OTEL_TRACES_EXPORTER=otlp (the SDK's default endpoint, http://localhost:4318). Off: neither,
    OTEL_TRACES_EXPORTER=none, or OTEL_SDK_DISABLED=true. Another exporter, or a transport other
    than http/protobuf, stops the service at start rather than tracing nothing silently."""
    environ = os.environ
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if exporter == "none" or not (exporter or endpoint):
        return None
    if exporter not in ("", "otlp"):
        raise ValueError(f"OTEL_TRACES_EXPORTER={exporter!r}: this service exports otlp or none")
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    if protocol != "http/protobuf":
        raise ValueError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: use http/protobuf")
    # Imported only when on: the SDK, and the exporter with protobuf and requests.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=_resource(), shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def _resource() -> "Resource":
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    resource = Resource.create()  # OTEL_RESOURCE_ATTRIBUTES, then OTEL_SERVICE_NAME
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    return resource


def untraced(scope: Mapping[str, object]) -> bool:
    """For FastAPI's bridge (`exclude`): True for a request that gets no span."""
    path = str(scope.get("path", ""))
    return path.rstrip("/") in UNTRACED_PATHS


def current_trace_id() -> str | None:
    """The current trace's id as 32 hex digits (as trace back ends show it), if in one."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def current_traceparent() -> str | None:
    """The W3C `traceparent` of the current span, or None outside a trace (tracing off)."""
    carrier: dict[str, str] = {}
    if trace.get_current_span().get_span_context().is_valid:
        _W3C.inject(carrier)
    return carrier.get("traceparent")


@contextmanager
def sending(tracer: Tracer | None, traceparent: str | None, name: str) -> Iterator[str | None]:
    """Around an outgoing call made on behalf of `traceparent` (an event's delivery): with a
    tracer, a client span, its child, whose own `traceparent` is yielded to send; without one
    (tracing off here), `traceparent` itself, sent on as it was recorded."""
    if tracer is None or traceparent is None:
        yield traceparent
        return
    parent = _W3C.extract({"traceparent": traceparent})
    with tracer.start_as_current_span(name, context=parent, kind=SpanKind.CLIENT):
        yield current_traceparent()


def annotate(attributes: Mapping[str, str | int | None], failed: bool = False) -> None:
    """Set these attributes (those not None) on the current span, if it records, and mark it
    failed if it did."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes({k: v for k, v in attributes.items() if v is not None})
        if failed:
            span.set_status(StatusCode.ERROR)
