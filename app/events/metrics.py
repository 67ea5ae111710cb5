"""The push deliveries' Prometheus metrics, and the functions that record them.

Label values are fixed sets, never a subscription id or URL, so no subscriber can grow the
number of series. Gauges are `livemax` in multiprocess mode: every worker measures the same
backlog in the database, and a stopped worker's value drops out (metrics.worker_stopped).
"""

from typing import Literal, get_args

from prometheus_client import Counter, Gauge

# What became of one attempt to POST an event to a subscriber (a test ping's too).
AttemptResult = Literal["success", "http_error", "timeout", "network_error", "url_not_allowed"]
ATTEMPT_RESULTS: tuple[str, ...] = get_args(AttemptResult)
# What an attempt did to its delivery: delivered, rescheduled for a retry, or given up.
DELIVERY_OUTCOMES = ("delivered", "retried", "failed")

ATTEMPTS = Counter(
    "event_delivery_attempts", "Attempts to POST an event to a subscriber, by result.", ["result"]
)
DELIVERIES = Counter(
    "event_deliveries",
    "Event delivery attempts by what they did to the delivery: delivered, retried, failed.",
    ["outcome"],
)
BACKLOG_AGE = Gauge(
    "event_delivery_backlog_age_seconds",
    "Age of the oldest delivery not yet delivered nor failed (0 when there is none).",
    multiprocess_mode="livemax",
)
BACKLOG_SIZE = Gauge(
    "event_deliveries_pending",
    "Deliveries not yet delivered nor failed.",
    multiprocess_mode="livemax",
)

for _result in ATTEMPT_RESULTS:
    ATTEMPTS.labels(_result)
for _outcome in DELIVERY_OUTCOMES:
    DELIVERIES.labels(_outcome)


def attempted(result: str, outcome: str) -> None:
    """Count one attempt: `result` in ATTEMPT_RESULTS, `outcome` in DELIVERY_OUTCOMES."""
    if result not in ATTEMPT_RESULTS or outcome not in DELIVERY_OUTCOMES:
        raise ValueError(f"unknown delivery result {result!r} or outcome {outcome!r}")
    ATTEMPTS.labels(result).inc()
    DELIVERIES.labels(outcome).inc()


def given_up() -> None:
    """Count a delivery failed without an attempt: its last attempts were never settled."""
    DELIVERIES.labels("failed").inc()


def backlog(age_seconds: float, pending: int) -> None:
    BACKLOG_AGE.set(max(age_seconds, 0.0))
    BACKLOG_SIZE.set(pending)
