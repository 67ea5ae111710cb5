"""Hardening against real servers: keys, limits and logs over real HTTP, and /metrics totals
over two workers started the README's way (./run.sh)."""

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import multiprocess
from prometheus_client.parser import text_string_to_metric_families

from tests.support.databases import database_url
from tests.support.live_server import ROOT, LiveServer

pytestmark = pytest.mark.live

KEY = "live-key-a1b2c3d4e5f6a7b8"
SECRET = "whsec_bGl2ZS10ZXN0LXNlY3JldC1kby1ub3QtbG9n"
LIMIT = 4096


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("keyed")
    env = {
        "API_KEYS": KEY,
        "WEBHOOK_SECRET": SECRET,
        "MAX_BODY_BYTES": str(LIMIT),
        "LOG_LEVEL": "INFO",
    }
    with (
        database_url("sqlite", tmp) as url,
        LiveServer(url, env=env, log_path=tmp / "server.log") as server,
    ):
        yield server


def log_lines(server: LiveServer) -> list[str]:
    assert server.log_path is not None
    return server.log_path.read_text().splitlines()


def test_live_keys_limits_and_json_logs(keyed_server: LiveServer):
    base, auth = keyed_server.base_url, {"Authorization": f"Bearer {KEY}"}
    assert httpx.get(f"{base}/products").status_code == 401
    assert httpx.get(f"{base}/metrics").status_code == 401
    assert httpx.get(f"{base}/healthz").status_code == 200
    product = httpx.post(
        f"{base}/products",
        headers=auth,
        json={"sku": "LIVE-1", "name": "Mug", "price": "5.00", "stock": 9},
    ).json()
    placed = httpx.post(
        f"{base}/orders",
        json={"product_id": product["id"], "quantity": 1},
        headers={**auth, "X-Request-ID": "live-order-1"},
    )
    assert placed.status_code == 201
    assert httpx.get(f"{base}/metrics", headers={"X-API-Key": KEY}).status_code == 200

    lines = log_lines(keyed_server)
    records = [json.loads(line) for line in lines]  # every line is JSON, uvicorn's too
    [access] = [
        r for r in records if r.get("request_id") == "live-order-1" and r["logger"] == "app.access"
    ]
    assert (access["method"], access["route"], access["status"]) == ("POST", "/orders", 201)
    assert access["duration_ms"] > 0
    [event] = [r for r in records if r.get("event") == "order_placed"]
    assert event["request_id"] == "live-order-1"
    text = "\n".join(lines)
    assert KEY not in text and SECRET not in text


def test_live_oversized_bodies_are_413_declared_and_chunked(keyed_server: LiveServer):
    url, auth = f"{keyed_server.base_url}/products", {"X-API-Key": KEY}
    payload = b'{"sku": "BIG", "name": "' + b"x" * (LIMIT * 4) + b'"}'

    declared = httpx.post(url, content=payload, headers=auth)
    chunked = httpx.post(
        url,
        content=iter([payload[i : i + 1000] for i in range(0, len(payload), 1000)]),
        headers=auth,
    )

    assert chunked.request.headers.get("transfer-encoding") == "chunked"
    for response in (declared, chunked):
        assert response.status_code == 413
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "payload_too_large"


# The README's serve command, with two workers: metrics must be the instance's totals.
class RunShServer(LiveServer):
    def start(self) -> None:
        env = {**self.env, "HOST": "127.0.0.1", "PORT": str(self.port), "WEB_CONCURRENCY": "2"}
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            ["./run.sh"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_ready(timeout=120)


def scraped(base_url: str, name: str, **labels: str) -> float:
    text = httpx.get(f"{base_url}/metrics", headers={"Connection": "close"}).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def healthz_count_per_worker(metrics_dir: Path) -> dict[str, float]:
    counts = {}
    for file in metrics_dir.glob("counter_*.db"):
        counts[file.stem] = sum(
            sample.value
            for family in multiprocess.MultiProcessCollector.merge([str(file)])
            for sample in family.samples
            if sample.name == "http_requests_total" and sample.labels.get("route") == "/healthz"
        )
    return counts


def test_metrics_are_totals_over_two_workers(tmp_path: Path):
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_1.db").write_bytes(b"left over from an earlier run")
    env = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    with (
        database_url("sqlite", tmp_path) as url,
        RunShServer(url, env=env, log_path=tmp_path / "server.log") as server,
    ):
        assert not (metrics_dir / "counter_1.db").exists(), "run.sh must clean the directory"
        sent = 0
        # New connection per request, so the kernel spreads them over both workers.
        while sent < 400 and sum(c > 0 for c in healthz_count_per_worker(metrics_dir).values()) < 2:
            for _ in range(20):
                assert (
                    httpx.get(
                        f"{server.base_url}/healthz", headers={"Connection": "close"}
                    ).status_code
                    == 200
                )
            sent += 20
        per_worker = healthz_count_per_worker(metrics_dir)
        assert sum(count > 0 for count in per_worker.values()) == 2, per_worker
        for _ in range(6):  # whichever worker answers the scrape, it reports the total
            assert scraped(server.base_url, "http_requests_total", route="/healthz") == sent
