"""The clients that ship with the service, run as a user runs them against a live server:
curl_examples.sh, the Postman collection under newman, and the smoke script on its own."""

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.live_server import ROOT, LiveServer, free_port

NEWMAN_LOCAL = ROOT / ".tools" / "node_modules" / ".bin" / "newman"
POSTMAN = ROOT / "postman"
LOCAL_ENVIRONMENT = POSTMAN / "local.postman_environment.json"
pytestmark = pytest.mark.live


def require_tool(name: str, *candidates: Path) -> str:
    """The tool's path; skipped on a laptop without it, a failure when CI=true."""
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    reason = f"{name} is not installed (see .ci/setup.d/)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {reason}")
    pytest.skip(reason)


def run_client(
    command: list[str], server: LiveServer, timeout: float = 180, **extra_env: str
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "BASE_URL": server.base_url,
        "API_KEY": server.env["API_KEY"],
        "WEBHOOK_SECRET": server.env["WEBHOOK_SECRET"],
        "STRIPE_WEBHOOK_SECRET": server.env.get("STRIPE_WEBHOOK_SECRET", ""),
        "EVENT_RECEIVER_URL": server.env.get("EVENT_RECEIVER_URL", ""),
        "NO_COLOR": "1",
        **extra_env,
    }
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    print(result.stdout[-20_000:], result.stderr[-5_000:], sep="\n")  # shown when a test fails
    return result


def _logging_curl(tmp_path: Path) -> tuple[Path, Path]:
    """A `curl` first on PATH that logs each call's arguments, one per line, then runs curl."""
    real_curl, bin_dir, log = require_tool("curl"), tmp_path / "bin", tmp_path / "curl.log"
    bin_dir.mkdir()
    wrapper = bin_dir / "curl"
    wrapper.write_text(
        f'#!/usr/bin/env bash\nprintf "%s\\n" "$@" "--end--" >>"{log}"\nexec {real_curl} "$@"\n'
    )
    wrapper.chmod(0o755)
    return bin_dir, log


def test_curl_examples_walk_through_passes(client_server: LiveServer, tmp_path: Path) -> None:
    require_tool("openssl")
    bin_dir, log = _logging_curl(tmp_path)
    result = run_client(
        ["bash", "curl_examples.sh"], client_server, PATH=f"{bin_dir}:{os.environ['PATH']}"
    )
    assert result.returncode == 0, result.stderr
    assert "All 113 calls answered as expected" in result.stdout
    assert '"duplicate":true' in result.stdout.replace(" ", "")
    assert "FAIL" not in result.stdout + result.stderr
    calls = [call.splitlines() for call in log.read_text().split("--end--\n") if call]
    assert len(calls) == 113
    bearer = f"Authorization: Bearer {client_server.env['API_KEY']}"
    for args in calls:
        is_webhook = args[-1].endswith(("/webhooks/payment", "/webhooks/stripe"))
        assert (bearer in args) != is_webhook, args


def test_curl_examples_stops_on_first_surprise(client_server: LiveServer) -> None:
    """A wrong webhook secret makes the signed payment 401: the script must say so and fail."""
    require_tool("curl")
    result = run_client(
        ["bash", "curl_examples.sh"], client_server, WEBHOOK_SECRET="not-the-server-secret"
    )
    assert result.returncode != 0
    assert "FAIL: POST /webhooks/payment answered 401, expected 200" in result.stderr
    assert "calls answered as expected" not in result.stdout


def test_smoke_script_standalone_reports_and_exits_zero(client_server: LiveServer) -> None:
    result = run_client([sys.executable, "tests/live/test_smoke.py"], client_server)
    assert result.returncode == 0, result.stdout
    assert "0 failed, 0 skipped" in result.stdout
    assert "FAIL" not in result.stdout


def test_smoke_script_standalone_fails_when_nothing_answers() -> None:
    env = {**os.environ, "BASE_URL": f"http://127.0.0.1:{free_port()}"}  # nothing listens
    result = subprocess.run(
        [sys.executable, "tests/live/test_smoke.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stdout
    assert "FAIL  service is up: ConnectError" in result.stdout
    assert "SKIP  create product (an earlier step failed)" in result.stdout


def run_newman(
    server: LiveServer, report: Path, **variables: str
) -> subprocess.CompletedProcess[str]:
    newman = require_tool("newman", NEWMAN_LOCAL)
    values = {
        "baseUrl": server.base_url,
        "apiKey": server.env["API_KEY"],
        "webhookSecret": server.env["WEBHOOK_SECRET"],
        "stripeWebhookSecret": server.env.get("STRIPE_WEBHOOK_SECRET", ""),
        "eventReceiverUrl": server.env.get("EVENT_RECEIVER_URL", ""),
        **variables,
    }
    command = [
        newman,
        "run",
        "postman_collection.json",
        "--environment",
        str(LOCAL_ENVIRONMENT),
        "--reporters",
        "cli,json",
        "--reporter-json-export",
        str(report),
        "--color",
        "off",
        "--timeout-request",
        "15000",
    ]
    for name, value in values.items():
        command += ["--env-var", f"{name}={value}"]
    return run_client(command, server)


def _environment(path: Path) -> dict[str, str]:
    return {v["key"]: v["value"] for v in json.loads(path.read_text())["values"] if v["enabled"]}


def test_postman_environments_hold_what_the_collection_does_not_set() -> None:
    collection_text = (ROOT / "postman_collection.json").read_text()
    collection = json.loads(collection_text)
    used = set(re.findall(r"\{\{(\w+)\}\}", collection_text)) | set(
        re.findall(r"pm\.variables\.get\('(\w+)'\)", collection_text)
    )
    own = {v["key"] for v in collection["variable"]}
    environments = sorted(POSTMAN.glob("*.postman_environment.json"))
    assert [p.name for p in environments] == [
        "local.postman_environment.json",
        "render.postman_environment.json",
    ]
    for path in environments:
        values = _environment(path)
        assert set(values) == used - own, path.name
        # Secrets are typed in by each user, never committed.
        secrets = ("apiKey", "webhookSecret", "stripeWebhookSecret")
        assert [values[secret] for secret in secrets] == ["", "", ""], path.name
    # The target variables live in the environments only, so no stale value can shadow them.
    assert not own & {"baseUrl", "apiKey", "webhookSecret", "stripeWebhookSecret"}
    assert _environment(LOCAL_ENVIRONMENT)["baseUrl"] == "http://127.0.0.1:8000"  # ./run.sh
    blueprint = yaml.safe_load((ROOT / "render.yaml").read_text())
    service = next(s for s in blueprint["services"] if s["type"] == "web")
    render = _environment(POSTMAN / "render.postman_environment.json")
    assert render["baseUrl"] == f"https://{service['name']}.onrender.com"


def test_postman_collection_passes_under_newman(client_server: LiveServer, tmp_path: Path) -> None:
    report = tmp_path / "newman.json"
    result = run_newman(client_server, report)
    assert result.returncode == 0, result.stdout[-5000:]
    run = json.loads(report.read_text())["run"]
    assert run["stats"]["assertions"]["failed"] == 0
    assert run["stats"]["assertions"]["total"] >= 100
    executions = run["executions"]
    assert {e["response"]["code"] for e in executions} >= {200, 201, 204, 401, 404, 409, 412, 422}
    stripe_paid = [
        e for e in executions if e["item"]["name"] == "Pay order (Stripe-signed webhook)"
    ]
    assert [e["response"]["code"] for e in stripe_paid] == [200]
    for execution in executions:
        headers = {h["key"].lower(): h["value"] for h in execution["request"]["header"]}
        is_webhook = execution["request"]["url"]["path"][0] == "webhooks"
        expected = None if is_webhook else f"Bearer {client_server.env['API_KEY']}"
        assert headers.get("authorization") == expected, execution["item"]["name"]


def test_postman_collection_fails_with_a_wrong_webhook_secret(
    client_server: LiveServer, tmp_path: Path
) -> None:
    report = tmp_path / "newman.json"
    result = run_newman(client_server, report, webhookSecret="not-the-server-secret")
    assert result.returncode != 0
    failures = json.loads(report.read_text())["run"]["failures"]
    assert any(f["source"]["name"] == "Pay order (signed webhook)" for f in failures)


def test_smoke_client_sends_the_api_key_everywhere_but_the_webhook() -> None:
    from tests.live.test_smoke import Smoke

    seen: list[tuple[str, str | None]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, request.headers.get("authorization")))
        return httpx.Response(200, json={}, headers={"X-Request-ID": "r1"})

    smoke = Smoke("http://service.invalid", api_key="k1", webhook_secret="s1,s2")
    smoke.http = httpx.Client(
        base_url="http://service.invalid", transport=httpx.MockTransport(answer)
    )
    smoke.call(200, "GET", "/products")
    smoke.webhook(200, "evt_1", {"type": "payment.succeeded"})
    assert seen == [("/products", "Bearer k1"), ("/webhooks/payment", None)]


# A Standard Webhooks style secret: the key is the bytes after `whsec_`, base64-decoded.
WHSEC = "whsec_" + base64.b64encode(b"sixteen byte key, not text!").decode()


@pytest.mark.parametrize("db_kind", ["sqlite"])
@pytest.mark.parametrize("tool", ["curl", "newman", "smoke"])
def test_clients_sign_with_a_whsec_secret_among_rotated_ones(
    live_server: Callable[..., AbstractContextManager[LiveServer]], tmp_path: Path, tool: str
) -> None:
    """`whsec_<base64>` secrets are keyed by the bytes they decode to, in every client."""
    env = {"WEBHOOK_SECRET": f"{WHSEC},an-older-secret", "API_KEY": ""}
    with live_server(env=env) as server:
        server.env["WEBHOOK_SECRET"] = WHSEC  # what the client is given: the current secret
        if tool == "curl":
            require_tool("openssl")
            result = run_client(["bash", "curl_examples.sh"], server)
        elif tool == "newman":
            result = run_newman(server, tmp_path / "newman.json")
        else:
            result = run_client([sys.executable, "tests/live/test_smoke.py"], server)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
