"""The README a newcomer reads first: its tour runs verbatim against a live server, its settings
table and .env.example cover every setting, its links lead somewhere, and docs/api.md's table of
error codes is the service's own list."""

import json
import os
import re
import subprocess
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest
import yaml

from app.core.config import Settings
from app.core.problem_codes import PROBLEM_CODES
from tests.support.live_server import ROOT, LiveServer

README = (ROOT / "README.md").read_text()
# Settings the contract names that the branches implementing them add to app/core/config.py.
CONTRACT_SETTINGS = {
    "CORS_ORIGINS",
    "PENDING_ORDER_TTL_SECONDS",
    "HOUSEKEEPING_INTERVAL_SECONDS",
    "EVENT_DELIVERY_TIMEOUT_SECONDS",
    "EVENT_RETRY_BASE_SECONDS",
    "EVENT_MAX_ATTEMPTS",
    "EVENT_ALLOW_PRIVATE_URLS",
    "EVENT_RETENTION_DAYS",
}
# What ./run.sh itself reads (`${NAME:-default}`), but for the interpreter that creates .venv
# and the temporary directory, which run.sh explains where it uses them.
RUN_SH_SETTINGS = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):-", (ROOT / "run.sh").read_text())) - {
    "PYTHON",
    "TMPDIR",
}
# OpenTelemetry's own variables (read by its SDK, app/core/tracing.py) that the docs name.
OTEL_SETTINGS = {
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_TRACES_EXPORTER",
    "OTEL_SERVICE_NAME",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
}
# Documents other parts of the service add; linked already so the README need not change then.
COMING_DOCS = {"docs/data-layer.md", "docs/stock.md", "docs/events.md"}
# Under tests/live: the whole module is `live`, its checks of tables and links included.
pytestmark = pytest.mark.live


def tour() -> str:
    section = README[README.index("## A five-call tour") :]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match, "the tour is the first bash block after its heading"
    return match.group(1)


@pytest.mark.parametrize("db_kind", ["sqlite"])
def test_readme_tour_runs_verbatim(
    live_server: Callable[..., AbstractContextManager[LiveServer]], tmp_path: Path
) -> None:
    with live_server(env={"API_KEYS": "", "WEBHOOK_SECRET": ""}) as server:
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", tour()],
            cwd=tmp_path,
            env={**os.environ, "API": server.base_url},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        print(result.stdout, result.stderr, sep="\n")
        assert result.returncode == 0, result.stderr
        answers = _json_objects(result.stderr + result.stdout)
        product = next(a for a in answers if "sku" in a)
        order = next(a for a in answers if a.get("status") == "CANCELED")
        now = httpx.get(f"{server.base_url}/products/{product['id']}", timeout=10).json()
        assert (now["price"], now["stock"]) == ("13.00", 100)
        assert order["items"][0]["product_id"] == product["id"]
        assert order["items"][0]["quantity"] == 2


def _json_objects(text: str) -> list[dict]:
    decoder, found, at = json.JSONDecoder(), [], text.find("{")
    while at != -1:
        value, end = decoder.raw_decode(text, at)
        found.append(value)
        at = text.find("{", end)
    return found


def _table_variables(text: str) -> set[str]:
    section = text[text.index("## Settings") :]
    section = section[: section.index("\n## ", 4)]
    return {
        name
        for row in section.splitlines()
        if row.startswith("| `")
        for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])
    }


def _settings_fields() -> set[str]:
    return {name.upper() for name in Settings.model_fields}


def test_readme_settings_table_lists_every_setting() -> None:
    listed = _table_variables(README)
    assert _settings_fields() <= listed, _settings_fields() - listed
    assert CONTRACT_SETTINGS | RUN_SH_SETTINGS | OTEL_SETTINGS <= listed
    unknown = listed - _settings_fields() - CONTRACT_SETTINGS - RUN_SH_SETTINGS - OTEL_SETTINGS
    assert not unknown, f"in the table but read by nothing: {unknown}"


def test_env_example_matches_the_settings() -> None:
    text = (ROOT / ".env.example").read_text()
    named = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", text, re.M))
    documented = _settings_fields() | CONTRACT_SETTINGS | RUN_SH_SETTINGS | OTEL_SETTINGS
    assert documented == named, named ^ documented


def test_readme_is_one_screenful_or_three() -> None:
    assert len(README.splitlines()) <= 200


def _anchors(page: Path) -> set[str]:
    """The fragment each heading of a Markdown page gets (GitHub's rule: lower case, spaces to
    hyphens, punctuation dropped)."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_links_in_readme_reflection_and_docs_lead_somewhere() -> None:
    pages = [ROOT / "README.md", ROOT / "REFLECTION.md", *(ROOT / "docs").glob("*.md")]
    for page in pages:
        for target, anchor in re.findall(r"\]\(([^)#]*)(?:#([^)]*))?\)", page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            path = (page.parent / target).resolve() if target else page
            if path.relative_to(ROOT).as_posix() in COMING_DOCS:
                continue
            assert path.exists(), f"{page.name} links to {target}"
            if anchor and path.suffix == ".md":
                assert anchor in _anchors(path), f"{page.name} links to {target}#{anchor}"


def test_alert_runbooks_lead_somewhere() -> None:
    rules = yaml.safe_load((ROOT / "ops" / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            runbook = rule.get("annotations", {}).get("runbook")
            if runbook:
                page, _, anchor = runbook.split(":")[0].partition("#")
                assert anchor in _anchors(ROOT / page), f"{rule['alert']}: {runbook}"


def test_reflection_quotes_only_figures_bench_readme_records() -> None:
    """Each latency or cost in REFLECTION.md (`12.6 / 34.9 ms`, `10.5 µs`...) is a figure of
    bench/README.md "Today's figures" or a section after it, where the run that measured it
    is described; the SLOs are targets."""
    reflection = (ROOT / "REFLECTION.md").read_text()
    bench = (ROOT / "bench" / "README.md").read_text()
    recorded = set(re.findall(r"\d[\d,]*(?:\.\d+)?", bench))
    number = r"\d[\d,]*(?:\.\d+)?"
    quoted = re.findall(rf"((?:{number} / )*{number}) ?(?:ms|µs)", reflection)
    figures = {n for group in quoted for n in group.split(" / ")} - {"300", "500"}
    assert figures, "no figure found: the pattern is wrong"
    assert figures <= recorded, sorted(figures - recorded)


def test_reflection_lists_every_alert() -> None:
    rules = yaml.safe_load((ROOT / "ops" / "alerts.yml").read_text())
    alerts = {r["alert"] for group in rules["groups"] for r in group["rules"] if "alert" in r}
    reflection = (ROOT / "REFLECTION.md").read_text()
    listed = set(re.findall(r"^\| `(\w+)` \|", reflection, re.M))
    assert alerts - listed == set(), "ops/alerts.yml has alerts REFLECTION.md does not list"


def test_docs_error_table_is_the_services_list_of_codes() -> None:
    text = (ROOT / "docs" / "api.md").read_text()
    rows = re.findall(r"^\| (\d{3}) \| `([a-z_]+)` \|", text, re.M)
    documented = sorted((int(status), code) for status, code in rows)
    expected = sorted((s, e.code) for s, entries in PROBLEM_CODES.items() for e in entries)
    assert documented == expected
