"""render.yaml: its structure is a valid Blueprint, and its build and start commands work here."""

import os
import re
import secrets
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.databases import database_url
from tests.support.live_server import ROOT, free_port

# Under tests/live: the whole module is `live`, its checks of the Blueprint's shape included.
pytestmark = pytest.mark.live
BLUEPRINT = yaml.safe_load((ROOT / "render.yaml").read_text())
WEB = next(s for s in BLUEPRINT["services"] if s["type"] == "web")
(DATABASE,) = BLUEPRINT["databases"]

# The keys of Render's Blueprint YAML reference (https://render.com/docs/blueprint-spec), for
# the kinds of entries this Blueprint uses: a key outside them is a typo Render would refuse.
ROOT_KEYS = {"services", "databases", "envVarGroups", "previews", "projects", "ungrouped"}
SERVICE_KEYS = {
    "type", "name", "runtime", "plan", "region", "repo", "branch", "rootDir", "buildCommand",
    "startCommand", "preDeployCommand", "healthCheckPath", "envVars", "autoDeploy",
    "autoDeployTrigger", "buildFilter", "numInstances", "scaling", "domains", "disk",
    "maxShutdownDelaySeconds", "previews", "dockerfilePath", "dockerContext", "dockerCommand",
    "registryCredential", "image", "initialDeployHook",
}  # fmt: skip
DATABASE_KEYS = {
    "name", "plan", "previewPlan", "region", "databaseName", "user", "postgresMajorVersion",
    "ipAllowList", "diskSizeGB", "previewDiskSizeGB", "readReplicas", "highAvailability",
}  # fmt: skip
ENV_VAR_SOURCES = {"value", "generateValue", "sync", "fromDatabase", "fromService"}
REGIONS = {"oregon", "ohio", "virginia", "frankfurt", "singapore"}
WEB_PLANS = {"free", "starter", "standard", "pro", "pro plus", "pro max", "pro ultra"}
DATABASE_PLANS = {"free", "basic-256mb", "basic-1gb", "basic-4gb"} | {
    f"{tier}-{size}gb" for tier in ("pro", "accelerated") for size in (4, 8, 16, 32, 64, 128)
}


def test_blueprint_uses_only_keys_of_renders_spec():
    assert set(BLUEPRINT) <= ROOT_KEYS
    assert set(WEB) <= SERVICE_KEYS, set(WEB) - SERVICE_KEYS
    assert set(DATABASE) <= DATABASE_KEYS, set(DATABASE) - DATABASE_KEYS
    for var in WEB["envVars"]:
        assert set(var) - {"key"} <= ENV_VAR_SOURCES, var
        assert len(set(var) & ENV_VAR_SOURCES) == 1, f"{var['key']}: exactly one value source"
        if "value" in var:
            assert isinstance(var["value"], str), f"{var['key']}: quote it, Render wants text"


def test_blueprint_fixes_what_cannot_change_after_creation():
    assert WEB["region"] in REGIONS
    assert DATABASE["region"] == WEB["region"], "the internal URL works within one region"
    # Quoted: Render reads it as text, and YAML would turn 16 into a number.
    assert DATABASE["postgresMajorVersion"] in {str(v) for v in range(13, 19)}
    assert DATABASE["databaseName"] and DATABASE["user"]
    assert WEB["plan"] in WEB_PLANS
    assert DATABASE["plan"] in DATABASE_PLANS


def test_database_accepts_internal_connections_only():
    assert DATABASE["ipAllowList"] == []


def test_blueprint_declares_a_python_web_service_started_by_run_sh():
    for key in ("name", "runtime", "buildCommand", "startCommand", "healthCheckPath"):
        assert WEB.get(key), key
    assert WEB["runtime"] == "python"
    # The lock as ./run.sh installs it: every package pinned, every file's hash checked.
    assert WEB["buildCommand"] == "pip install --require-hashes -r requirements.txt"
    assert WEB["healthCheckPath"] == "/readyz"
    # One script migrates, prepares the metrics directory and holds the uvicorn flags.
    assert WEB["startCommand"] == "./run.sh start"
    mode = subprocess.run(
        ["git", "ls-files", "--stage", "run.sh"], cwd=ROOT, capture_output=True, text=True
    ).stdout.split()[:1]
    assert mode in ([], ["100755"]), "run.sh must be committed executable for Render"
    env = {var["key"]: var.get("value") for var in WEB["envVars"]}
    assert env["HOST"] == "0.0.0.0", "Render's proxy reaches the service on every interface"
    assert env["PENDING_ORDER_TTL_SECONDS"] == "1800"


def test_every_from_database_names_a_declared_database():
    declared = {db["name"] for db in BLUEPRINT["databases"]}
    wired = [var["fromDatabase"] for var in WEB["envVars"] if "fromDatabase" in var]
    assert wired, "DATABASE_URL should come from the Blueprint's database"
    for source in wired:
        assert source["name"] in declared
        assert source["property"] == "connectionString"


def test_secrets_are_generated_or_prompted_never_committed():
    env = {var["key"]: var for var in WEB["envVars"]}
    for key in ("WEBHOOK_SECRET", "API_KEYS"):
        assert "value" not in env[key], f"{key} must not be committed"
        assert env[key].get("generateValue") is True or env[key].get("sync") is False
    assert {var["key"] for var in WEB["envVars"]} >= {"DATABASE_URL", "APP_ENV"}


def _commented(first: str) -> str:
    """The YAML commented out from the line starting `first` on, as it reads uncommented."""
    lines = (ROOT / "render.yaml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(first))
    prefix = first[: first.index("# ") + 2]
    block = []
    for line in lines[start:]:
        if not line.startswith(prefix):
            break
        block.append(prefix[:-2] + line[len(prefix) :])
    return "\n".join(block)


CRON = yaml.safe_load(_commented("  # - type: cron"))[0]
PRE_DEPLOY = yaml.safe_load(_commented("    # preDeployCommand:"))["preDeployCommand"]


def test_the_commented_cron_job_is_a_cron_service_render_accepts():
    assert CRON["type"] == "cron"
    assert set(CRON) <= SERVICE_KEYS | {"schedule"}, set(CRON) - SERVICE_KEYS
    assert CRON["plan"] in WEB_PLANS - {"free"}, "cron jobs have no free plan"
    assert CRON["region"] == DATABASE["region"], "the internal URL works within one region"
    assert len(CRON["schedule"].split()) == 5  # minute hour day month weekday, in UTC
    assert CRON["buildCommand"] == WEB["buildCommand"]
    (source,) = [var["fromDatabase"] for var in CRON["envVars"] if "fromDatabase" in var]
    assert source == {"name": DATABASE["name"], "property": "connectionString"}
    assert "preDeployCommand" not in WEB, "paid plans only: commented out on the free plan"


def test_pre_deploy_then_the_cron_command_work_here(db_kind: str, tmp_path: Path):
    with database_url(db_kind, tmp_path) as url:
        url = re.sub(r"^postgresql\+psycopg://", "postgres://", url)
        env = _render_env(url, free_port(), CRON)
        env["PYTHON"] = str(ROOT / ".venv" / "bin" / "python")
        migrated = subprocess.run(
            ["bash", "-c", PRE_DEPLOY], cwd=ROOT, env=env, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        assert migrated.returncode == 0, migrated.stderr
        assert "upgraded from an empty database to" in migrated.stderr
        chores = subprocess.run(
            ["bash", "-c", CRON["startCommand"]], cwd=ROOT, env=env, capture_output=True,
            text=True, timeout=120,
        )  # fmt: skip
        assert chores.returncode == 0, chores.stderr
        assert '"message": "chores done"' in chores.stderr


def _render_env(url: str, port: int, service: dict | None = None) -> dict[str, str]:
    """The environment Render would give the service, with generated and prompted values."""
    env = {
        **os.environ,
        "PORT": str(port),
        "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
    }
    for var in (service or WEB)["envVars"]:
        if "value" in var:
            env[var["key"]] = str(var["value"])
        elif "fromDatabase" in var:
            env[var["key"]] = url
        else:
            env[var["key"]] = secrets.token_urlsafe(32)
    return env


def test_build_and_start_commands_work_here_with_port_set(db_kind: str, tmp_path: Path):
    port = free_port()
    with database_url(db_kind, tmp_path) as url:
        # Render hands out postgres:// URLs; the service must accept them as they come.
        url = re.sub(r"^postgresql\+psycopg://", "postgres://", url)
        env = _render_env(url, port)
        subprocess.run(
            ["bash", "-c", WEB["buildCommand"]],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            timeout=300,
        )
        server = subprocess.Popen(
            ["bash", "-c", WEB["startCommand"]],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            assert _answers(f"http://127.0.0.1:{port}{WEB['healthCheckPath']}", server)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)


def _answers(url: str, server: subprocess.Popen, timeout: float = 90) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"start command exited with {server.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return False
