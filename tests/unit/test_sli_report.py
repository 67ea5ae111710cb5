"""ops/sli_report.py computes the SLIs the way Prometheus' histogram_quantile() does."""

import importlib.util
import math

import pytest

from tests.support.live_server import ROOT

_SPEC = importlib.util.spec_from_file_location("sli_report", ROOT / "ops" / "sli_report.py")
assert _SPEC is not None and _SPEC.loader is not None
sli_report = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(sli_report)

INF = float("inf")


def test_quantile_interpolates_within_the_bucket_like_histogram_quantile():
    # The same series as ops/alerts.test.yml's ReadLatencyHigh case, where promtool says 498ms.
    assert sli_report.quantile(0.99, {0.3: 0, 0.5: 100, INF: 100}) == pytest.approx(0.498)
    assert sli_report.quantile(0.5, {0.1: 50, 0.2: 100, INF: 100}) == pytest.approx(0.1)


def test_quantile_in_the_inf_bucket_is_the_highest_finite_bound():
    assert sli_report.quantile(0.99, {0.1: 10, 1.0: 20, INF: 100}) == 1.0


def test_quantile_of_nothing_is_nan():
    assert math.isnan(sli_report.quantile(0.5, {0.1: 0, INF: 0}))


def test_report_sums_statuses_and_groups_the_slis():
    get = 'method="GET",route="/products"'
    exposition = (
        "\n".join(
            [
                f'http_requests_total{{{get},status="200"}} 90',
                f'http_requests_total{{{get},status="503"}} 10',
                f'http_request_duration_seconds_bucket{{{get},status="200",le="0.1"}} 90',
                f'http_request_duration_seconds_bucket{{{get},status="200",le="+Inf"}} 90',
                f'http_request_duration_seconds_bucket{{{get},status="503",le="0.1"}} 0',
                f'http_request_duration_seconds_bucket{{{get},status="503",le="+Inf"}} 10',
            ]
        )
        + "\n"
    )
    text = sli_report.report(exposition)
    assert "100 requests, 10 5xx, availability 90.0000%" in text
    assert "SLI reads (GET products/orders): n=100 5xx=10" in text
