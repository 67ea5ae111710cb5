"""A real uvicorn server in a subprocess: the one harness of the live tests and of bench/.

It serves as ./run.sh does (the same uvicorn flags), in a process group of its own so a stop
(or a crash, SIGKILL) reaches every worker."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
# The flags ./run.sh passes to uvicorn besides host, port and workers (the service logs each
# request itself, as JSON). The bench's bare app gets exactly these too.
UVICORN_FLAGS: list[str] = [
    "--no-access-log",
    "--log-config",
    "app/core/log_config.json",
    "--timeout-keep-alive",
    "5",
    "--timeout-graceful-shutdown",
    "15",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def migrate(database_url: str) -> None:
    """Bring the database to Alembic's head, as ./run.sh does before it serves: here, in this
    process, on a connection handed to migrations/env.py (a second interpreter would cost
    half a second a server)."""
    from alembic import command
    from alembic.config import Config

    from app.core.config import Settings
    from app.db.connect import create_db_engine

    config = Config(toml_file=str(ROOT / "pyproject.toml"))
    engine = create_db_engine(Settings(_env_file=None, database_url=database_url))
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        engine.dispose()


def _wait_group_gone(group: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.killpg(group, signal.SIGKILL)


# Whether the running test is marked `live` (set per test by tests/conftest.py; None outside
# pytest, as in bench/): a test that starts a server without the marker fails, so
# `-m "not live"` really leaves out every test that starts one.
current_test_is_live: bool | None = None


class LiveServer:
    """`with LiveServer(url, workers=2) as server:` migrates, serves, and stops on exit."""

    def __init__(
        self,
        database_url: str | None,
        *,
        workers: int = 1,
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
        app: str = "app.main:app",
        ready_path: str = "/readyz",
        migrate: bool = True,
        uvicorn_args: tuple[str, ...] | None = None,
        cwd: Path = ROOT,
    ) -> None:
        self.database_url, self.workers, self.cwd = database_url, workers, cwd
        self.app, self.ready_path, self.migrate = app, ready_path, migrate and bool(database_url)
        self.env = {**os.environ, "APP_ENV": "test", **(env or {})}
        if database_url:
            self.env["DATABASE_URL"] = database_url
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.uvicorn_args = uvicorn_args
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> "LiveServer":
        if self.migrate:
            assert self.database_url is not None
            migrate(self.database_url)
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def start(self) -> None:
        if current_test_is_live is False:
            raise RuntimeError("this test starts a live server: mark it @pytest.mark.live")
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                self.app,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
                *(UVICORN_FLAGS if self.uvicorn_args is None else self.uvicorn_args),
            ],
            cwd=self.cwd,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own process group, so a stop reaches the workers as well as the supervisor.
            start_new_session=True,
        )
        try:
            self.wait_ready()
        except BaseException:
            self.stop()  # a server that never became ready is not left running
            raise

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}")
            try:
                if httpx.get(self.base_url + self.ready_path, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"server at {self.base_url} not ready after {timeout}s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Signal the whole process group (SIGKILL for a crash) and wait for it to end."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        _wait_group_gone(self.process.pid)

    def __exit__(self, *exc: object) -> None:
        self.stop()
