"""bench/faults.py's `refusal` figure measures what it says: refused requests, every one a 503."""

import re
import subprocess
import sys
from pathlib import Path

from tests.support.live_server import ROOT


def test_the_refusal_figure_comes_from_503s_only(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.faults", "refusal", "--requests", "40"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)},
    )

    assert result.returncode == 0, result.stderr[-2000:]
    figure = re.search(
        r"refused POST /orders: ([\d.]+) µs of CPU each; statuses (.*)$", result.stdout
    )
    assert figure is not None, result.stdout
    assert float(figure[1]) > 0
    assert figure[2] == "{503: 200}", "5 rounds of 40, each refused overloaded"
