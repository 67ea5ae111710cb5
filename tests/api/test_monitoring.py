"""Monitoring as code: the alert rules and the dashboard are valid, and every metric they use
is one the service exposes at /metrics."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import SQLModel

from app.core.config import Settings
from app.db.connect import create_db_engine
from app.main import create_app
from tests.support.databases import stamp_head
from tests.support.live_server import ROOT

OPS = ROOT / "ops"
ALERTS = OPS / "alerts.yml"
DASHBOARD = OPS / "grafana-dashboard.json"
# Series Prometheus makes itself, not the service.
PROMETHEUS_OWN = {"up"}
PROMQL_WORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        reason = "promtool is not installed (bash .ci/setup.d/30-promtool.sh installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {reason}")
        pytest.skip(reason)
    return path


def run_promtool(*args: str) -> None:
    result = subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def alert_rules() -> list[dict]:
    return [
        rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]
    ]


def dashboard_exprs() -> list[str]:
    def walk(node: object) -> list[str]:
        if isinstance(node, dict):
            found = [node["expr"]] if isinstance(node.get("expr"), str) else []
            return found + [e for value in node.values() for e in walk(value)]
        if isinstance(node, list):
            return [e for item in node for e in walk(item)]
        return []

    return walk(json.loads(DASHBOARD.read_text()))


def as_promql(grafana_expr: str) -> str:
    return grafana_expr.replace("$__rate_interval", "5m").replace("$__range", "1h")


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects (not functions, labels or keywords)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    return {
        match.group(0)
        for match in re.finditer(r"(?<![\w.])[A-Za-z_:][\w:]*", expr)
        if match.group(0) not in PROMQL_WORDS and not expr[match.end() :].lstrip().startswith("(")
    }


def exposed_names() -> set[str]:
    settings = Settings(_env_file=None, app_env="test", database_url="sqlite://")
    engine = create_db_engine(settings)
    SQLModel.metadata.create_all(engine)
    stamp_head(engine)
    client = TestClient(create_app(settings, engine))
    client.get("/products")  # so the request series exist
    text = client.get("/metrics").text
    return {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }


def test_alert_rules_pass_promtool_check():
    run_promtool("check", "rules", str(ALERTS))


def test_alert_rules_unit_tests_pass():
    run_promtool("test", "rules", str(OPS / "alerts.test.yml"))


def test_prometheus_scrape_config_is_valid():
    run_promtool("check", "config", "--syntax-only", str(OPS / "prometheus.yml"))


def test_dashboard_queries_are_valid_promql(tmp_path: Path):
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{n}", "expr": as_promql(expr)}
                    for n, expr in enumerate(dashboard_exprs())
                ],
            }
        ]
    }
    check = tmp_path / "dashboard-rules.yml"
    check.write_text(yaml.safe_dump(rules))
    run_promtool("check", "rules", str(check))


def test_metric_name_extraction_finds_series_not_functions():
    assert metric_names(
        'sum by (le) (rate(a_total{route=~"/x|/y/{id}"}[5m])) / clamp_min(up, 1e-9) > 0.3'
    ) == {"a_total", "up"}


def test_every_metric_in_the_dashboard_and_alerts_is_exposed():
    recorded = {rule["record"] for rule in alert_rules() if "record" in rule}
    in_alerts = {name for rule in alert_rules() for name in metric_names(rule["expr"])}
    in_dashboard = {name for expr in dashboard_exprs() for name in metric_names(as_promql(expr))}
    used = (in_alerts | in_dashboard) - recorded - PROMETHEUS_OWN

    assert len(used) >= 8, used  # the extraction found the real names
    assert used - exposed_names() == set()


def test_alerts_cover_each_slo():
    alerts = {rule["alert"] for rule in alert_rules() if "alert" in rule}
    assert {
        "ErrorBudgetFastBurn",
        "ErrorBudgetSlowBurn",
        "ReadLatencyHigh",
        "OrderPlacementLatencyHigh",
        "WebhookFailing",
        "DatabasePoolSaturated",
        "RequestsShedForOverload",
    } <= alerts
