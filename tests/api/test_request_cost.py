"""bench/request_cost.py runs every case against a real service and prints a full table."""

import re
import subprocess
import sys
from pathlib import Path

from tests.support.live_server import ROOT

ROW = re.compile(r"^\| (?P<case>[^|]+) \| (?P<figures>(?:-?\d+ \| ){5}\d\.\d\d) \|$", re.M)


def _request_cost(tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """bench/request_cost.py on a few requests: the table it prints, and its exit."""
    return subprocess.run(
        [sys.executable, "-m", "bench.request_cost", *options]
        + ["--requests", "40", "--concurrency", "4", "--rounds", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)},
    )


def test_request_cost_measures_every_case_through_the_whole_service(tmp_path: Path) -> None:
    result = _request_cost(tmp_path)

    assert result.returncode == 0, result.stderr[-2000:]
    rows = {match["case"]: match["figures"] for match in ROW.finditer(result.stdout)}
    assert set(rows) == {
        "GET /products/{id}",
        "GET /products?limit=20",
        "GET /products?limit=20&after=",
        "GET /products?limit=20&offset=",
        "GET /products?limit=20&offset=&sort=-price",
        "GET /products?limit=20&q=",
        "POST /orders",
    }
    for figures in rows.values():
        service_us, _lean, unit_us, *_ = (float(f) for f in figures.split(" | "))
        assert 0 < unit_us < service_us
    assert re.search(r"bare FastAPI GET /: \d+ µs; the same answer from a thread", result.stdout)


PG_ROW = re.compile(r"^\| (?P<case>[^|]+) \| (?P<service>\d+) \| (?P<lean>\d+) \| - \| - \| ", re.M)


def test_request_cost_measures_the_service_side_on_postgresql_too(tmp_path: Path) -> None:
    result = _request_cost(tmp_path, "--engine", "postgresql")

    assert result.returncode == 0, result.stderr[-2000:]
    rows = {match["case"]: int(match["service"]) for match in PG_ROW.finditer(result.stdout)}
    assert len(rows) == 7 and all(service > 0 for service in rows.values()), result.stdout
