"""Print the service's SLIs from its own /metrics: requests, 5xx share and latency per route.

    python -m ops.sli_report http://127.0.0.1:8000        # API_KEY is sent when set

Latency quantiles are estimated from the histogram buckets the way Prometheus'
histogram_quantile() does (linear within a bucket), so they match the dashboard and alerts.
The figures are totals since the server started: start it fresh before a load run.
"""

import os
import sys
from collections import defaultdict

import httpx
from prometheus_client.parser import text_string_to_metric_families

SLO_SECONDS = {"GET": 0.3, "POST /orders": 0.5}


def quantile(q: float, buckets: dict[float, float]) -> float:
    """histogram_quantile(q) over cumulative `buckets` {upper bound: count}."""
    bounds = sorted(buckets)
    total = buckets[float("inf")]
    if total == 0:
        return float("nan")
    rank, lower, below = q * total, 0.0, 0.0
    for bound in bounds:
        if buckets[bound] >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / max(buckets[bound] - below, 1e-12)
        lower, below = bound, buckets[bound]
    return lower


def collect(text: str) -> dict[tuple[str, str], dict]:
    routes: dict[tuple[str, str], dict] = defaultdict(
        lambda: {"count": 0.0, "5xx": 0.0, "buckets": defaultdict(float)}
    )
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            key = (labels.get("method", ""), labels.get("route", ""))
            if sample.name == "http_requests_total":
                routes[key]["count"] += sample.value
                if labels["status"].startswith("5"):
                    routes[key]["5xx"] += sample.value
            elif sample.name == "http_request_duration_seconds_bucket":
                routes[key]["buckets"][float(labels["le"])] += sample.value
    return routes


# The SLIs of ops/alerts.yml: reads are GET on these routes; order placement is POST /orders.
READ_ROUTES = {"/products", "/products/{product_id}", "/orders", "/orders/{order_id}"}


def _merged(routes: dict[tuple[str, str], dict], keys: list[tuple[str, str]]) -> dict:
    merged: dict = {"count": 0.0, "5xx": 0.0, "buckets": defaultdict(float)}
    for key in keys:
        merged["count"] += routes[key]["count"]
        merged["5xx"] += routes[key]["5xx"]
        for bound, count in routes[key]["buckets"].items():
            merged["buckets"][bound] += count
    return merged


def sli_lines(routes: dict[tuple[str, str], dict]) -> list[str]:
    groups = {
        "reads (GET products/orders)": [k for k in routes if k[0] == "GET" and k[1] in READ_ROUTES],
        "order placement (POST /orders)": [k for k in routes if k == ("POST", "/orders")],
        "webhook (POST /webhooks/payment)": [k for k in routes if k[1] == "/webhooks/payment"],
    }
    lines = []
    for name, keys in groups.items():
        data = _merged(routes, keys)
        if data["count"]:
            lines.append(
                f"SLI {name}: n={data['count']:.0f} 5xx={data['5xx']:.0f} "
                f"p50={quantile(0.5, data['buckets']) * 1000:.1f}ms "
                f"p99={quantile(0.99, data['buckets']) * 1000:.1f}ms"
            )
    return lines


def report(text: str) -> str:
    rows = ["method route                      requests    5xx   p50 ms   p99 ms  within SLO"]
    total = errors = 0.0
    routes = collect(text)
    for (method, route), data in sorted(routes.items(), key=lambda kv: -kv[1]["count"]):
        buckets, slo = (
            data["buckets"],
            SLO_SECONDS.get(f"{method} {route}", SLO_SECONDS.get(method)),
        )
        within = f"{buckets[slo] / data['count']:.2%} ≤{slo * 1000:.0f}ms" if slo else ""
        rows.append(
            f"{method:6} {route:26} {data['count']:9.0f} {data['5xx']:6.0f} "
            f"{quantile(0.5, buckets) * 1000:8.1f} {quantile(0.99, buckets) * 1000:8.1f}"
            f"  {within}"
        )
        total, errors = total + data["count"], errors + data["5xx"]
    rows.append(
        f"all: {total:.0f} requests, {errors:.0f} 5xx, availability "
        f"{(1 - errors / total) if total else float('nan'):.4%}"
    )
    return "\n".join(rows + sli_lines(routes))


def main() -> None:
    base_url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000"
    key = os.environ.get("API_KEY")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = httpx.get(f"{base_url.rstrip('/')}/metrics", headers=headers, timeout=10)
    response.raise_for_status()
    print(report(response.text))


if __name__ == "__main__":
    main()
