"""The benchmark: the real service against the bare-FastAPI ceiling, same machine, same run.

    .venv/bin/python -m bench.run                       # every case, 2 interleaved rounds
    .venv/bin/python -m bench.run --configs sqlite:1 --rounds 1 --duration 5
    .venv/bin/python -m bench.run scale                 # GET /orders at 10 k and 1 M orders

For each configuration (engine:workers) and round: the bare app (bench/bare_app.py) with that
many workers, then the service on a fresh database of 1,000 products, each case measured by
wrk (64 connections, 10 s, after a warm-up). Odd rounds go through the configurations in
reverse, so drift in a noisy machine's load does not favour one of them. Each figure's ratio
is to the bare run just before it. Writes reports/bench-<time>.{json,md} (the .md is the table
bench/README.md "Today's figures" quotes; reports/ is not committed).
"""

import argparse
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path
from statistics import mean
from typing import Any

from bench.servers import (
    API_KEY,
    POSTGRES_URL,
    ROOT,
    UVICORN_FLAGS,
    Served,
    fresh_database,
    postgres_cpu_seconds,
    seed_orders,
    seed_products,
    serve,
)

PRODUCTS = 1_000
# case -> (the URL wrk is given, its Lua script in bench/wrk/)
CASES = {
    "GET /products/{id}": ("/products/1", "get_product.lua"),
    "GET /products?limit=20": ("/products?limit=20", "get.lua"),
    "GET /products?limit=20&offset=random": ("/products?limit=20", "offset_page.lua"),
    "…&offset=random&sort=-price": ("/products?limit=20&sort=-price", "offset_page.lua"),
    "POST /orders": ("/orders", "post_order.lua"),
    "mixed 80/20": ("/", "mixed.lua"),
}
# Cases a tree before sorting (`--before`) cannot serve: it refuses `sort` (422).
SORTED_CASES = frozenset({"…&offset=random&sort=-price"})
BARE = "bare FastAPI GET /"
# (case, engine, workers) -> (least ratio, most p99 in ms, zero errors, zero timeouts), as the
# Fast path issue sets them; on PostgreSQL "no 5xx" is zero errors (wrk counts any non-2xx).
TARGETS = {
    ("GET /products/{id}", "sqlite", 1): (0.50, None, True, True),
    ("GET /products?limit=20", "sqlite", 1): (0.30, None, True, True),
    ("POST /orders", "sqlite", 1): (0.25, 100, True, True),
    ("POST /orders", "sqlite", 2): (0.20, 100, True, True),
    ("GET /products/{id}", "postgresql", 1): (0.30, None, True, False),
    ("GET /products?limit=20", "postgresql", 1): (0.20, None, True, False),
    ("POST /orders", "postgresql", 1): (0.15, None, True, False),
}


def ensure_wrk() -> str:
    """Debian's wrk, installed with apt-get when missing."""
    if not shutil.which("wrk"):
        print("bench: installing wrk with apt-get", file=sys.stderr)
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    return shutil.which("wrk") or "wrk"


def wrk(base_url: str, case: tuple[str, str], seconds: float, connections: int) -> dict[str, Any]:
    path, script = case
    command = [
        "wrk",
        f"-t{min(2, connections)}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "2s",
        "-s",
        f"bench/wrk/{script}",
        base_url + path,
    ]
    output = subprocess.run(
        command,
        cwd=ROOT,
        env={**os.environ, "BENCH_API_KEY": API_KEY},
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    figures = json.loads(output.split("BENCH ", 1)[1])
    seconds_run = figures["duration_us"] / 1e6
    return {
        "rps": figures["requests"] / seconds_run,
        "p50_ms": figures["p50_us"] / 1000,
        "p99_ms": figures["p99_us"] / 1000,
        "errors": figures["connect"] + figures["read"] + figures["write"] + figures["status"],
        "non_2xx": figures["status"],
        "timeouts": figures["timeout"],
    }


def measure(
    server: Served, case: tuple[str, str], args: argparse.Namespace, engine: str = "-"
) -> dict[str, Any]:
    """wrk's figures, the service's CPU per request and, on PostgreSQL, the database server's
    (the two share this machine's cores)."""
    wrk(server.url, case, args.warmup, args.connections)
    cpu_before, database_before = server.cpu_seconds(), postgres_cpu_seconds()
    figures = wrk(server.url, case, args.duration, args.connections)
    requests = max(figures["rps"] * args.duration, 1)
    figures["cpu_ms"] = 1000 * (server.cpu_seconds() - cpu_before) / requests
    if engine == "postgresql":
        figures["db_cpu_ms"] = 1000 * (postgres_cpu_seconds() - database_before) / requests
    return figures


def trees(args: argparse.Namespace, round_no: int) -> list[tuple[str, Path, str]]:
    """(label, source tree, schema revision) of each version measured: this tree, and with
    `--before` an earlier one (on its own schema), in alternating order round by round."""
    if args.before is None:
        return [("", ROOT, "head")]
    both = [("before", args.before, args.before_revision), ("after", ROOT, "head")]
    return both if round_no % 2 == 0 else both[::-1]


def run_config(engine: str, workers: int, round_no: int, args: argparse.Namespace) -> list[dict]:
    results = []
    with serve("bench.bare_app:app", workers, ready_path="/") as server:
        bare = measure(server, ("/", "get.lua"), args)
    results.append({"case": BARE, "engine": "-", "workers": workers, "round": round_no, **bare})
    print(
        f"  {BARE:26} w={workers} {bare['rps']:8.0f} req/s cpu {bare['cpu_ms']:.3f} ms/req",
        flush=True,
    )
    for label, tree, revision in trees(args, round_no):
        results += run_tree(engine, workers, round_no, args, bare, label, tree, revision)
    return results


def run_tree(
    engine: str,
    workers: int,
    round_no: int,
    args: argparse.Namespace,
    bare: dict[str, Any],
    label: str,
    tree: Path,
    revision: str,
) -> list[dict]:
    """Every case on one version of the service, each figure's ratio to `bare`."""
    results = []
    with fresh_database(engine, revision) as database_url:
        seed_products(database_url, PRODUCTS)
        with serve("app.main:app", workers, database_url, tree=tree) as server:
            for case in args.cases:
                if label == "before" and case in SORTED_CASES:
                    continue
                name = f"{case} ({label})" if label else case
                figures = measure(server, CASES[case], args, engine)
                figures["ratio"] = figures["rps"] / bare["rps"]
                results.append(
                    {
                        "case": name,
                        "engine": engine,
                        "workers": workers,
                        "round": round_no,
                        **figures,
                    }
                )
                print(
                    f"  {name:26} {engine}:{workers} {figures['rps']:8.0f} req/s "
                    f"ratio {figures['ratio']:.2f} p99 {figures['p99_ms']:.1f} ms "
                    f"errors {figures['errors']} timeouts {figures['timeouts']} "
                    f"cpu {figures['cpu_ms']:.3f} ms/req"
                    + (f" db cpu {figures['db_cpu_ms']:.3f}" if "db_cpu_ms" in figures else ""),
                    flush=True,
                )
    return results


def verdict(key: tuple[str, str, int], runs: list[dict]) -> str:
    case = key[0].removesuffix(" (after)").removesuffix(" (before)")
    target = TARGETS.get((case, *key[1:]))
    if target is None:
        return (
            "report"
            if key[1] == "postgresql" and not any(r["non_2xx"] for r in runs)
            else ("**5xx/non-2xx**" if key[1] == "postgresql" else "")
        )
    least, p99, no_errors, no_timeouts = target
    ok = mean(r["ratio"] for r in runs) >= least
    ok &= p99 is None or max(r["p99_ms"] for r in runs) <= p99
    ok &= not no_errors or sum(r["errors"] for r in runs) == 0
    ok &= not no_timeouts or sum(r["timeouts"] for r in runs) == 0
    parts = [f"≥ {least:.2f}"] + ([f"p99 ≤ {p99} ms"] if p99 else [])
    return f"{', '.join(parts)}: {'met' if ok else '**not met**'}"


def table(results: list[dict]) -> str:
    keys: dict[tuple[str, str, int], list[dict]] = {}
    for result in results:
        keys.setdefault((result["case"], result["engine"], result["workers"]), []).append(result)
    lines = [
        "| case | engine | workers | req/s (each run) | ratio (each run) | p50 ms | p99 ms "
        "(worst) | errors | timeouts | server CPU ms/request | target |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, runs in keys.items():
        case, engine, workers = key
        ratios = " / ".join(f"{r['ratio']:.2f}" for r in runs) if case != BARE else "1"
        rates = " / ".join(f"{r['rps']:.0f}" for r in runs)
        lines.append(
            f"| {case} | {engine} | {workers} | "
            f"{rates} | {ratios} | "
            f"{mean(r['p50_ms'] for r in runs):.1f} | {max(r['p99_ms'] for r in runs):.1f} | "
            f"{sum(r['errors'] for r in runs)} | {sum(r['timeouts'] for r in runs)} | "
            f"{mean(r['cpu_ms'] for r in runs):.2f} | "
            f"{verdict(key, runs) if case != BARE else 'denominator'} |"
        )
    return "\n".join(lines)


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").open()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split()[1]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    packages = ", ".join(
        f"{name} {version(name)}"
        for name in (
            "fastapi",
            "starlette",
            "uvicorn",
            "pydantic",
            "sqlalchemy",
            "sqlmodel",
            "psycopg",
            "uvloop",
            "httptools",
        )
    )
    return (
        f"{cpu}, {len(__import__('os').sched_getaffinity(0))} cores; Linux "
        f"{platform.release()}; Python {platform.python_version()}; SQLite "
        f"{sqlite3.sqlite_version}; {_postgres_version()}; wrk {wrk_version}; {packages}; "
        f"uvicorn flags as ./run.sh: {' '.join(UVICORN_FLAGS) or 'none'}; commit {commit}"
    )


def _postgres_version() -> str:
    from sqlalchemy import create_engine, text

    engine = create_engine(POSTGRES_URL, hide_parameters=True)
    with engine.connect() as connection:
        server = connection.execute(text("SHOW server_version")).scalar()
    engine.dispose()
    return f"PostgreSQL {server}"


def benchmark(args: argparse.Namespace) -> str:
    configs = [(c.split(":")[0], int(c.split(":")[1])) for c in args.configs.split(",")]
    results: list[dict] = []
    for round_no in range(args.rounds):
        for engine, workers in configs if round_no % 2 == 0 else configs[::-1]:
            print(f"round {round_no + 1}: {engine}, {workers} worker(s)", flush=True)
            results += run_config(engine, workers, round_no, args)
    results.sort(
        key=lambda r: (
            r["workers"],
            ("-", "sqlite", "postgresql").index(r["engine"]),
            _case_order(r["case"]),
        )
    )
    report = (
        f"Machine: {machine()}\n\nwrk: 2 threads, {args.connections} connections, "
        f"{args.duration:g} s after a {args.warmup:g} s warm-up, 2 s timeout; "
        f"{args.rounds} round(s), interleaved.\n\n{table(results)}\n"
    )
    return _save("bench", results, report)


def _case_order(name: str) -> tuple[int, str]:
    case = name.removesuffix(" (after)").removesuffix(" (before)")
    return (list(CASES).index(case) if case in CASES else -1, name)


def scale_paths(base_url: str, count: int) -> list[str]:
    """The first page by offset (with its count), then cursor pages (no count): the second
    page, and one from the middle of the table, all and PAID only. Cursors carry the sort key,
    so the server issues them: the `next` of a one-order page by offset."""
    import urllib.request

    def cursor_after(position: int, query: str = "") -> str:
        request = urllib.request.Request(
            f"{base_url}/orders?limit=1&offset={position}{query}", headers={"X-API-Key": API_KEY}
        )
        with urllib.request.urlopen(request, timeout=600) as response:  # noqa: S310 (127.0.0.1)
            return str(json.load(response)["next"])

    second, middle = cursor_after(19), cursor_after(count // 2)
    paid_middle = cursor_after(count // 8, "&status=PAID")
    return [
        "/orders?limit=20",
        "/orders?limit=20&status=PAID",
        f"/orders?limit=20&after={second}",
        f"/orders?limit=20&after={middle}",
        f"/orders?limit=20&status=PAID&after={paid_middle}",
    ]


def scale(args: argparse.Namespace) -> str:
    """GET /orders newest first, all and PAID only, at each size: latency with one client."""
    lines = [
        "| engine | orders | case | p50 ms | p99 ms | req/s (1 connection) |",
        "|---|---|---|---|---|---|",
    ]
    results = []
    for engine in args.engines.split(","):
        for count in (10_000, 1_000_000):
            with fresh_database(engine) as database_url:
                started = time.monotonic()
                seed_products(database_url, PRODUCTS)
                seed_orders(database_url, count, PRODUCTS)
                print(
                    f"{engine}: seeded {count} orders in {time.monotonic() - started:.0f} s",
                    flush=True,
                )
                with serve("app.main:app", 1, database_url) as server:
                    for path in scale_paths(server.url, count):
                        wrk(server.url, (path, "get.lua"), 1, 1)
                        figures = wrk(server.url, (path, "get.lua"), args.duration, 1)
                        results.append({"engine": engine, "orders": count, "case": path, **figures})
                        lines.append(
                            f"| {engine} | {count:,} | GET {path} | "
                            f"{figures['p50_ms']:.2f} | {figures['p99_ms']:.2f} | "
                            f"{figures['rps']:.0f} |"
                        )
                        print(lines[-1], flush=True)
    return _save("scale", results, "\n".join(lines) + "\n")


def _save(kind: str, results: list[dict], report: str) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (ROOT / "reports").mkdir(exist_ok=True)
    (ROOT / "reports" / f"{kind}-{stamp}.json").write_text(json.dumps(results, indent=1))
    (ROOT / "reports" / f"{kind}-{stamp}.md").write_text(report)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", nargs="?", choices=("bench", "scale"), default="bench")
    parser.add_argument(
        "--configs",
        default="sqlite:1,sqlite:2,postgresql:1,postgresql:2",
        help="engine:workers, comma-separated",
    )
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--engines", default="sqlite,postgresql", help="scale mode only")
    parser.add_argument(
        "--before",
        type=Path,
        help="also measure this tree of an earlier version of the service, same run "
        "(git archive <commit> | tar -x -C <folder>)",
    )
    parser.add_argument(
        "--before-revision",
        default="0010",
        help="the migration head of the --before tree (its database is built to it)",
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    ensure_wrk()
    print(benchmark(args) if args.mode == "bench" else scale(args))


if __name__ == "__main__":
    main()
