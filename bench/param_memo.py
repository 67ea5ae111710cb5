"""What the parameter-lookup memos (app/http/fastapi_param_memo.py) save, same run.

Each round starts two fresh processes on the same seeded database, one with the memos and one
without (FastAPI's own lookups, per request), and measures the CPU per request of each case
through the ASGI interface, as bench/request_cost.py does (no server, no socket). Rounds
alternate the two, and the best of the rounds is kept for each, so the machine's other load
shows less. The saving is the difference.

    .venv/bin/python -m bench.param_memo                     # SQLite, 3,000 requests, best of 5
    .venv/bin/python -m bench.param_memo --engine postgresql --rounds 3
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="param-memo-"))

from bench.request_cost import CASES, PRODUCTS
from bench.servers import fresh_database, seed_products

VARIANTS = ("memo", "plain")
ROOT = Path(__file__).resolve().parent.parent


def child(url: str, variant: str, requests: int, concurrency: int) -> dict[str, float]:
    """CPU µs per request of each case, in this process, with or without the memos."""
    import contextlib

    from app.http import fastapi_param_memo
    from bench.request_cost import cpu_per_request, service

    if variant == "plain":
        fastapi_param_memo.install = lambda: None  # FastAPI's own lookups, per request
    figures = {}
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        for name, case in CASES.items():
            cpu, statuses = cpu_per_request(service(url, False), case, requests, concurrency)
            assert set(statuses) <= {200, 201}, f"{name}: statuses {dict(statuses)}"
            figures[name] = cpu
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--child", nargs=2, metavar=("URL", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        url, variant = args.child
        print(json.dumps(child(url, variant, args.requests, args.concurrency)))
        return
    best: dict[str, dict[str, float]] = {v: {} for v in VARIANTS}
    with fresh_database(args.engine) as url:
        seed_products(url, PRODUCTS)
        for _ in range(args.rounds):
            for variant in VARIANTS:
                command = [sys.executable, "-m", "bench.param_memo", "--child", url, variant]
                command += ["--requests", str(args.requests)]
                command += ["--concurrency", str(args.concurrency)]
                child_run = subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
                found = json.loads(child_run.stdout)
                for name, cpu in found.items():
                    best[variant][name] = min(best[variant].get(name, float("inf")), cpu)
    print(
        f"{args.engine}, {args.concurrency} concurrent, {args.requests} requests a case, best of "
        f"{args.rounds} rounds; CPU per request:\n"
    )
    print("| case | with the memos µs | FastAPI's own lookups µs | saved µs | saved |")
    print("|---|---|---|---|---|")
    for name in CASES:
        memo, plain = best["memo"][name], best["plain"][name]
        print(
            f"| {name} | {memo:.0f} | {plain:.0f} | {plain - memo:.0f} | "
            f"{(plain - memo) / plain:.0%} |"
        )


if __name__ == "__main__":
    main()
