"""./run.sh as a newcomer runs it: `migrate` says what it did, and `.env` is honoured."""

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.support.collector import Collector
from tests.support.databases import database_url
from tests.support.live_server import ROOT, free_port

pytestmark = pytest.mark.live


def run_sh(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(cwd / "run.sh"), *args],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _revision(url: str) -> str | None:
    engine = create_engine(url, hide_parameters=True)
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()


def test_migrate_says_what_it_applied_then_that_it_is_at_head(db_kind: str, tmp_path: Path):
    with database_url(db_kind, tmp_path) as url:
        first = run_sh("migrate", DATABASE_URL=url)
        assert first.returncode == 0, first.stderr
        head = _revision(url)
        assert head is not None
        assert re.search(rf"upgraded from an empty database to {head} \(head\)", first.stdout)
        again = run_sh("migrate", DATABASE_URL=url)
        assert again.returncode == 0, again.stderr
        assert f"is already at head ({head})" in again.stdout


def test_migrate_from_an_older_revision_names_both(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "-m", "alembic", "upgrade", "0001"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        check=True,
        capture_output=True,
        timeout=120,
    )
    result = run_sh("migrate", DATABASE_URL=url)
    assert result.returncode == 0, result.stderr
    assert f"upgraded from 0001 to {_revision(url)} (head)" in result.stdout


def _checkout_with_dotenv(tmp_path: Path, dotenv: str) -> Path:
    """The repository as a user has it, plus their .env (never written into the real one)."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for name in ("run.sh", ".venv", "app", "migrations", "pyproject.toml"):
        (checkout / name).symlink_to(ROOT / name)
    for requirements in ROOT.glob("requirements*.txt"):
        (checkout / requirements.name).symlink_to(requirements)
    (checkout / ".env").write_text(dotenv)
    return checkout


def _serves(checkout: Path, port: int, **env: str) -> bool:
    server = subprocess.Popen(
        ["bash", str(checkout / "run.sh")],
        cwd=checkout,
        env={
            k: v
            for k, v in {**os.environ, **env}.items()
            if k not in ("HOST", "PORT", "WEB_CONCURRENCY") or k in env
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and server.poll() is None:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                time.sleep(0.3)
        return False
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_serve_reads_host_and_port_from_dotenv_and_the_environment_wins(tmp_path: Path):
    dotenv_port, env_port = free_port(), free_port()
    checkout = _checkout_with_dotenv(
        tmp_path,
        f"DATABASE_URL=sqlite:///{tmp_path / 'orders.db'}\n"
        f"HOST=127.0.0.1\nPORT='{dotenv_port}'\nWEB_CONCURRENCY=1\n",
    )
    assert _serves(checkout, dotenv_port)
    assert _serves(checkout, env_port, PORT=str(env_port))


def test_serve_exports_the_otel_lines_of_dotenv_so_traces_reach_the_collector(tmp_path: Path):
    """The SDK reads only the environment: ./run.sh exports .env's OTEL_* lines."""
    port = free_port()
    with Collector() as collector:
        checkout = _checkout_with_dotenv(
            tmp_path,
            f"DATABASE_URL=sqlite:///{tmp_path / 'orders.db'}\nPORT={port}\n"
            f"OTEL_EXPORTER_OTLP_ENDPOINT={collector.url}\nOTEL_SERVICE_NAME=dotenv-orders\n"
            "export OTEL_BSP_SCHEDULE_DELAY=100\n",
        )
        server = subprocess.Popen(
            ["bash", str(checkout / "run.sh")],
            cwd=checkout,
            env={k: v for k, v in os.environ.items() if k not in ("HOST", "PORT")},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            answered = None
            while answered is None and time.monotonic() < deadline and server.poll() is None:
                try:
                    answered = httpx.get(f"http://127.0.0.1:{port}/products", timeout=2)
                except httpx.HTTPError:
                    time.sleep(0.3)
            while b"GET /products" not in collector.sent() and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)

    assert answered is not None and answered.status_code == 200
    assert b"GET /products" in collector.sent() and b"dotenv-orders" in collector.sent()


def test_a_two_worker_server_logs_json_from_its_first_line(tmp_path: Path):
    """Render's start command, 2 workers: the migration's line, uvicorn's supervisor and each
    worker, all JSON lines, the first included (uvicorn's own are plain text by default)."""
    port, log = free_port(), tmp_path / "server.log"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'orders.db'}", "PORT": str(port),
           "WEB_CONCURRENCY": "2", "PYTHON": str(ROOT / ".venv" / "bin" / "python")}  # fmt: skip
    with log.open("wb") as out:
        server = subprocess.Popen(
            ["bash", str(ROOT / "run.sh"), "start"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            while log.read_text().count("Application startup complete") < 2:
                assert server.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    lines = log.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # any plain-text line fails here
    assert records[0]["logger"] == "run.sh" and "upgraded from" in records[0]["message"]
    messages = [record["message"] for record in records]
    assert any(m.startswith("Uvicorn running on") for m in messages), messages
    assert any(m.startswith("Started parent process") for m in messages), messages
    assert sum(m.startswith("Started server process") for m in messages) == 2, messages


def test_ci_lints_then_runs_the_readmes_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    readme = (ROOT / "README.md").read_text()
    assert "./run.sh test" in readme and "./run.sh lint" in readme
    assert ci.index("./run.sh lint") < ci.index("./run.sh test")


def test_unknown_command_lists_the_commands():
    result = run_sh("nonsense")
    assert result.returncode == 2
    for command in ("serve", "start", "test", "lint", "migrate", "chores", "lock", "audit"):
        assert command in result.stderr


@pytest.mark.parametrize("command", ["audit", "outdated"])
def test_audit_and_outdated_say_so_when_pypi_cannot_be_reached(command: str):
    # Every HTTPS request goes to a closed local port: the index is out of reach, nothing is sent.
    proxy = f"http://127.0.0.1:{free_port()}"
    result = run_sh(command, HTTPS_PROXY=proxy, https_proxy=proxy, NO_PROXY="", no_proxy="")
    assert result.returncode == 3, result.stderr
    assert f"run.sh: {command} NOT RUN: " in result.stderr
    assert "No known vulnerabilities" not in result.stdout + result.stderr


def test_ci_audits_and_passes_only_an_unreachable_source():
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.index("./run.sh audit") < ci.index("./run.sh test")
    # 0: audited clean; 3: not run, said so; anything else (1: a vulnerability) fails CI.
    assert '3) echo "ci: audit NOT RUN' in ci and '*) exit "$audit"' in ci


def test_installs_check_every_hash():
    script = (ROOT / "run.sh").read_text()
    assert re.search(r'pip install [^\n]*--require-hashes -r "\$file"', script)
