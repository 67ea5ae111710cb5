"""The service's Prometheus metrics, and the small functions that record them.

Rules and routers call the functions below (`order_placed()`, `webhook_delivery("processed",
"stripe")`);
nothing else touches the metric objects. Label values are fixed sets, so no client input can
grow the number of series.

With several uvicorn workers, prometheus-client's multiprocess mode keeps each worker's figures
in files under PROMETHEUS_MULTIPROC_DIR (./run.sh sets it and cleans it at start), and /metrics
adds them up: the figures are the instance's totals, whichever worker answers the scrape.
"""

import logging
import os
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

ORDER_REJECTION_REASONS = (
    "insufficient_stock",
    "product_not_found",
    "validation",
    "external_id_conflict",
)
WEBHOOK_OUTCOMES = ("processed", "duplicate", "ignored", "bad_signature", "stale", "rejected")
# The webhook problem codes counted as bad_signature and stale; any other refusal is rejected.
_SIGNATURE_OUTCOMES = {"invalid_signature": "bad_signature", "stale_timestamp": "stale"}
# Requests the request path refused before any work (app/http/request_path.py), by reason: the
# problem's code, or client_gone for a client that left while it waited for its turn.
REFUSAL_REASONS = (
    "overloaded",
    "request_timeout",
    "headers_too_large",
    "payload_too_large",
    "client_gone",
)
log = logging.getLogger("app.metrics")
# Buckets (seconds) include the SLO thresholds in REFLECTION.md, so the SLIs are exact.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0)

disable_created_metrics()  # no `_created` series: half the exposition, nothing alerts use

HTTP_REQUESTS = Counter(
    "http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time from receiving a request to sending its last byte, by method, route and status.",
    ["method", "route", "status"],
    buckets=LATENCY_BUCKETS,
)
ORDERS_PLACED = Counter("orders_placed", "Orders placed (stock reserved).")
ORDERS_REJECTED = Counter("orders_rejected", "Order requests refused, by reason.", ["reason"])
STOCK_REJECTIONS = Counter(
    "stock_rejections", "Orders refused because a line asked for more than was in stock."
)
ORDER_STATUS_CHANGES = Counter("order_status_changes", "Orders moved to a new status.", ["status"])
ORDERS_EXPIRED = Counter(
    "orders_expired", "PENDING orders canceled at the end of their payment window."
)
SHIPMENTS = Counter("shipments", "Shipments recorded (goods that left the shelf).")
UNITS_SHIPPED = Counter("units_shipped", "Units shipped, over every shipment.")
REFUNDS = Counter("refunds", "Refunds recorded (from the refunds call or a payment webhook).")
REFUNDED_AMOUNT = Counter(
    "refunded_amount", "Money given back by refunds, in the shop's currency's major units."
)
STOCK_COUNTS = Counter("stock_counts", "Stock counts recorded.")
STOCK_COUNT_CORRECTIONS = Counter(
    "stock_count_corrections",
    "Stock counts that changed on_hand, by direction (found more, or fewer, than recorded).",
    ["direction"],
)
STOCK_COUNT_UNITS = Counter(
    "stock_count_corrected_units",
    "Units counts added to or took from on_hand, by direction.",
    ["direction"],
)
# Every provider's deliveries together (the series dashboards read before there were two
# webhooks), and each provider's (payment: POST /webhooks/payment, stripe: /webhooks/stripe).
WEBHOOK_DELIVERIES = Counter(
    "webhook_deliveries", "Payment webhook deliveries (all providers), by outcome.", ["outcome"]
)
WEBHOOK_DELIVERIES_BY_PROVIDER = Counter(
    "webhook_deliveries_by_provider",
    "Payment webhook deliveries, by provider and outcome.",
    ["provider", "outcome"],
)
HTTP_REFUSALS = Counter(
    "http_refusals",
    "Requests refused before any work was done for them, by reason.",
    ["reason"],
)
DB_POOL_CHECKED_OUT = Gauge(
    "db_pool_checked_out_connections",
    "Database connections in use, over the live workers.",
    multiprocess_mode="livesum",
)
DB_POOL_MAX = Gauge(
    "db_pool_max_connections",
    "Connections the workers' pools may open (pool size + overflow), over the live workers.",
    multiprocess_mode="livesum",
)

# Every labelled series exists from the start (at 0), so rates and alerts never see gaps.
for _reason in ORDER_REJECTION_REASONS:
    ORDERS_REJECTED.labels(_reason)
for _outcome in WEBHOOK_OUTCOMES:
    WEBHOOK_DELIVERIES.labels(_outcome)
_refusals = {reason: HTTP_REFUSALS.labels(reason) for reason in REFUSAL_REASONS}
COUNT_DIRECTIONS = ("up", "down")
for _direction in COUNT_DIRECTIONS:
    STOCK_COUNT_CORRECTIONS.labels(_direction)
    STOCK_COUNT_UNITS.labels(_direction)


def order_placed() -> None:
    ORDERS_PLACED.inc()


def order_rejected(reason: str) -> None:
    """`reason`: one of ORDER_REJECTION_REASONS; insufficient_stock is a stock rejection too."""
    if reason not in ORDER_REJECTION_REASONS:
        raise ValueError(f"unknown order rejection reason {reason!r}")
    ORDERS_REJECTED.labels(reason).inc()
    if reason == "insufficient_stock":
        STOCK_REJECTIONS.inc()


# The statuses an order can move to, each with its series: app/orders.py declares them from its
# TRANSITIONS (`order_statuses`), so the labels are the order status enum's, never typed here.
_status_changes: dict[str, Any] = {}


def order_statuses(statuses: Iterable[str]) -> None:
    """Declare the statuses an order can move to; each series exists from then on (at 0)."""
    for status in statuses:
        _status_changes[str(status)] = ORDER_STATUS_CHANGES.labels(str(status))


def order_status_changed(status: str) -> None:
    """Count a move to `status`, one of those declared; any other raises ValueError."""
    counter = _status_changes.get(status)
    if counter is None:
        raise ValueError(f"unknown order status {status!r} (declared: {list(_status_changes)})")
    counter.inc()


def shipped(units: int) -> None:
    SHIPMENTS.inc()
    UNITS_SHIPPED.inc(units)


def refunded(amount_cents: int) -> None:
    REFUNDS.inc()
    REFUNDED_AMOUNT.inc(amount_cents / 100)


def stock_counted(correction: int) -> None:
    """Count a stock count; one that changed on_hand is a correction, up or down."""
    STOCK_COUNTS.inc()
    if correction:
        direction = "up" if correction > 0 else "down"
        STOCK_COUNT_CORRECTIONS.labels(direction).inc()
        STOCK_COUNT_UNITS.labels(direction).inc(abs(correction))


def orders_expired(count: int) -> None:
    ORDERS_EXPIRED.inc(count)


# The webhooks' providers, each with its series: app/payments.py declares them from the
# provider enum (`webhook_providers`), so the labels are never typed here.
_providers: dict[str, dict[str, Any]] = {}


def webhook_providers(providers: Iterable[str]) -> None:
    """Declare the providers; each one's series exist from then on (at 0)."""
    for provider in map(str, providers):
        _providers[provider] = {
            outcome: WEBHOOK_DELIVERIES_BY_PROVIDER.labels(provider, outcome)
            for outcome in WEBHOOK_OUTCOMES
        }


def signature_outcome(code: str) -> str:
    """The outcome of a delivery refused with the problem `code`."""
    return _SIGNATURE_OUTCOMES.get(code, "rejected")


def webhook_delivery(outcome: str, provider: str = "payment") -> None:
    """Count one payment webhook delivery; `outcome` is one of WEBHOOK_OUTCOMES, `provider`
    one of those declared.

    processed: first delivery, applied; duplicate: event id seen before; ignored: received,
    changes nothing here (a Stripe event type the service does not act on, or for no order of
    this shop); bad_signature: 401 invalid_signature; stale: 401 stale_timestamp; rejected:
    any other non-2xx answer.
    """
    if outcome not in WEBHOOK_OUTCOMES:
        raise ValueError(f"unknown webhook outcome {outcome!r}")
    by_outcome = _providers.get(str(provider))
    if by_outcome is None:
        raise ValueError(f"unknown webhook provider {provider!r} (declared: {list(_providers)})")
    WEBHOOK_DELIVERIES.labels(outcome).inc()
    by_outcome[outcome].inc()


def request_refused(reason: str) -> None:
    """Count a refusal; reasons outside REFUSAL_REASONS (a 401, a 422) are counted by status."""
    counter = _refusals.get(reason)
    if counter is not None:
        counter.inc()


# Labelled children by (method, route, status): a dict hit instead of a labels() call per request.
_request_series: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def request_observed(method: str, route: str, status: int, seconds: float) -> None:
    key = (method, route, status)
    series = _request_series.get(key)
    if series is None:
        labels = (method, route, str(status))
        series = (HTTP_REQUESTS.labels(*labels), HTTP_DURATION.labels(*labels))
        _request_series[key] = series
    series[0].inc()
    series[1].observe(seconds)


def pool_capacity(connections: int) -> None:
    DB_POOL_MAX.set(connections)


def connection_checked_out() -> None:
    DB_POOL_CHECKED_OUT.inc()


def connection_checked_in() -> None:
    DB_POOL_CHECKED_OUT.dec()


def setup(configured_dir: str | None) -> None:
    """Warn when the multiprocess directory is set where it cannot act."""
    if configured_dir and not multiprocess_dir():
        log.warning(
            "PROMETHEUS_MULTIPROC_DIR is set in .env only: prometheus-client reads it "
            "from the environment, so /metrics shows one worker's figures"
        )


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def worker_stopped() -> None:
    """Drop this worker's live gauges from the totals (its counters still count)."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(os.getpid())


# A gauge of the database's state, read at scrape time (so the same whichever worker answers):
# written into the exposition here, never kept in a worker's metric objects.
PRODUCTS_BELOW_THRESHOLD = "products_below_low_stock_threshold"


def _read_at_scrape(products_below_threshold: int) -> bytes:
    return (
        f"# HELP {PRODUCTS_BELOW_THRESHOLD} Live products whose available is below their "
        "low_stock_threshold, read from the database at scrape time.\n"
        f"# TYPE {PRODUCTS_BELOW_THRESHOLD} gauge\n"
        f"{PRODUCTS_BELOW_THRESHOLD} {float(products_below_threshold)}\n"
    ).encode()


def render(products_below_threshold: int) -> tuple[bytes, str]:
    """The exposition text: the sum over every worker in multiprocess mode, and the gauges
    read from the database at scrape time."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    return body + _read_at_scrape(products_below_threshold), CONTENT_TYPE_LATEST
