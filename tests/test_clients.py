"""The clients that ship with the service, run as a user runs them against a live server:
curl_examples.sh, the Postman collection under newman, and the smoke script on its own."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.live_server import ROOT, LiveServer, free_port

NEWMAN_LOCAL = ROOT / ".tools" / "node_modules" / ".bin" / "newman"
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


def run_client(command: list[str], server: LiveServer, timeout: float = 180,
               **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BASE_URL": server.base_url, "API_KEY": server.env["API_KEY"],
           "WEBHOOK_SECRET": server.env["WEBHOOK_SECRET"], "NO_COLOR": "1", **extra_env}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=timeout, check=False)
    print(result.stdout[-20_000:], result.stderr[-5_000:], sep="\n")  # shown when a test fails
    return result


def test_curl_examples_walk_through_passes(client_server: LiveServer) -> None:
    require_tool("curl")
    require_tool("openssl")
    result = run_client(["bash", "curl_examples.sh"], client_server)
    assert result.returncode == 0, result.stderr
    assert "All " in result.stdout and "calls answered as expected" in result.stdout
    assert '"duplicate":true' in result.stdout.replace(" ", "")
    assert "FAIL" not in result.stdout + result.stderr


def test_curl_examples_stops_on_first_surprise(client_server: LiveServer) -> None:
    """A wrong webhook secret makes the signed payment 401: the script must say so and fail."""
    require_tool("curl")
    result = run_client(["bash", "curl_examples.sh"], client_server,
                        WEBHOOK_SECRET="not-the-server-secret")
    assert result.returncode != 0
    assert "FAIL: POST /webhooks/payment answered 401, expected 200" in result.stderr
    assert "calls answered as expected" not in result.stdout


def test_smoke_script_standalone_reports_and_exits_zero(client_server: LiveServer) -> None:
    result = run_client([sys.executable, "tests/test_smoke.py"], client_server)
    assert result.returncode == 0, result.stdout
    assert "0 failed, 0 skipped" in result.stdout
    assert "FAIL" not in result.stdout


def test_smoke_script_standalone_fails_when_nothing_answers() -> None:
    env = {**os.environ, "BASE_URL": f"http://127.0.0.1:{free_port()}"}  # nothing listens
    result = subprocess.run([sys.executable, "tests/test_smoke.py"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1, result.stdout
    assert "FAIL  service is up: ConnectError" in result.stdout
    assert "SKIP  create product (an earlier step failed)" in result.stdout
