"""What traces cost, same run: tracing off against the code before it, and tracing on.

Each round starts a fresh process per variant on the same seeded database and measures the CPU
per request of each case through the ASGI interface, as bench/request_cost.py does (no server,
no socket); rounds alternate the variants and the best of the rounds is kept for each.

- `before`: the tree given by `--before` (the service before traces; this script copied into
  its bench/), run as it is;
- `off`: this tree, no `OTEL_*` variable (the default);
- `on`: this tree, OTEL_EXPORTER_OTLP_ENDPOINT pointing at a collector on 127.0.0.1 in a process
  of its own (its CPU is not counted): the span per request and per unit of work, batched,
  encoded and sent over OTLP/HTTP by the SDK's thread, which is counted. The batch queue is
  made large enough to drop no span, and flushed before the clock stops;
- `sampled`: as `on`, with OTEL_TRACES_SAMPLER=parentbased_traceidratio and
  OTEL_TRACES_SAMPLER_ARG=0.1: a tenth of the traces that start here are recorded.

    git archive <commit before traces> | tar -x -C /tmp/before
    cp bench/tracing_cost.py /tmp/before/bench/
    .venv/bin/python -m bench.tracing_cost --before /tmp/before        # SQLite, best of 5
    .venv/bin/python -m bench.tracing_cost --engine postgresql --rounds 3
"""

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="tracing-cost-"))

ROOT = Path(__file__).resolve().parent.parent
CASES = ("GET /products/{id}", "GET /products?limit=20", "POST /orders")
# A collector that answers every OTLP export 200 and keeps nothing; prints its port.
COLLECTOR = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"""


def child(
    url: str, variant: str, requests: int, concurrency: int, cases: tuple[str, ...] = CASES
) -> dict[str, Any]:
    """CPU µs per request of each case, in this process; `on` builds the pipeline the OTEL_*
    variables describe, as the service does, and flushes it inside the measured time."""
    provider = None
    if variant in (
        "on",
        "sampled",
    ):  # first: importing the tests' harness (bench.servers) drops OTEL_*
        from app.core import tracing

        provider = tracing.provider_from_environment()
        assert provider is not None, "the OTEL_* variables did not turn traces on"
    import uvloop

    import app
    from app.core.config import Settings
    from app.main import create_app
    from bench.request_cost import CASES as ALL_CASES
    from bench.request_cost import _request
    from bench.servers import API_KEY

    settings = Settings(_env_file=None, database_url=url, api_keys=[API_KEY])
    figures: dict[str, Any] = {"app": str(Path(app.__file__).parent.parent)}
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        for name in cases:
            service = create_app(settings, tracer_provider=provider) if provider else None
            service = service or create_app(settings)

            async def load(service: Any = service, case: Any = ALL_CASES[name]) -> float:
                for _ in range(200):  # warm-up: caches, compiled statements
                    await _request(service, *case)
                if provider is not None:
                    provider.force_flush()
                turns = asyncio.Semaphore(concurrency)

                async def one() -> int:
                    async with turns:
                        return await _request(service, *case)

                started = time.process_time()
                statuses = await asyncio.gather(*(one() for _ in range(requests)))
                if provider is not None:
                    provider.force_flush()  # the spans' export is part of the cost
                spent = time.process_time() - started
                assert set(statuses) <= {200, 201}, f"statuses {set(statuses)}"
                return spent / requests * 1e6

            figures[name] = uvloop.run(load())
    if provider is not None:
        provider.shutdown()
    return figures


def run_child(tree: Path, url: str, variant: str, args: argparse.Namespace, env: dict) -> dict:
    command = [sys.executable, "-m", "bench.tracing_cost", "--child", url, variant]
    command += ["--requests", str(args.requests), "--concurrency", str(args.concurrency)]
    for case in args.case or ():
        command += ["--case", case]
    done = subprocess.run(command, check=True, capture_output=True, cwd=tree, env=env)
    found: dict[str, Any] = json.loads(done.stdout)
    assert Path(found.pop("app")) == tree.resolve(), f"{variant} ran another tree's app"
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--before", type=Path, help="A tree of the service before traces.")
    parser.add_argument(
        "--case", action="append", choices=CASES, help="Only this case (may repeat)."
    )
    parser.add_argument("--only", action="append", help="Only this variant (may repeat).")
    parser.add_argument("--child", nargs=2, metavar=("URL", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        url, variant = args.child
        cases = tuple(args.case or CASES)
        print(json.dumps(child(url, variant, args.requests, args.concurrency, cases)))
        return
    from bench.request_cost import PRODUCTS
    from bench.servers import fresh_database, seed_products

    plain = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    collector = subprocess.Popen(
        [sys.executable, "-c", COLLECTOR], stdout=subprocess.PIPE, text=True
    )
    try:
        assert collector.stdout is not None
        port = int(collector.stdout.readline())
        traced = {
            **plain,
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
            "OTEL_BSP_MAX_QUEUE_SIZE": str(4 * (args.requests + 200)),
        }
        sampled = {
            **traced,
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.1",
        }
        variants = [("off", ROOT, plain), ("on", ROOT, traced), ("sampled", ROOT, sampled)]
        if args.before:
            variants.insert(0, ("before", args.before, plain))
        variants = [v for v in variants if not args.only or v[0] in args.only]
        best: dict[str, dict[str, float]] = {name: {} for name, _, _ in variants}
        with fresh_database(args.engine) as url:
            seed_products(url, PRODUCTS)
            for turn in range(args.rounds):
                for name, tree, env in variants if turn % 2 == 0 else variants[::-1]:
                    for case, cpu in run_child(tree, url, name, args, env).items():
                        best[name][case] = min(best[name].get(case, float("inf")), cpu)
    finally:
        collector.kill()
        collector.wait()
    print(
        f"{args.engine}, {args.concurrency} concurrent, {args.requests} requests a case, best of "
        f"{args.rounds} rounds; CPU per request:\n"
    )
    names = [name for name, _, _ in variants]
    print("| case | " + " | ".join(f"{name} µs" for name in names) + " |")
    print("|---|" + "---|" * len(names))
    for case in args.case or CASES:
        print(f"| {case} | " + " | ".join(f"{best[name][case]:.0f}" for name in names) + " |")


if __name__ == "__main__":
    main()
