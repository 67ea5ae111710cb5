"""The event loop never waits: each hazard that would stall a worker, on a live server.

Units of work run on the loop (raw sqlite3, whose statements take microseconds; asyncpg, which
is asynchronous), so anything that could make a statement wait must not block the loop:
- a held write lock (SQLite: another process's writer) or row lock (PostgreSQL): the writer
  waits with async sleeps (SQLite) or on the socket (PostgreSQL), and /healthz keeps answering;
- a slow statement (a substring scan over a large table): it runs in a database thread on
  SQLite (`Database.scan`), asynchronously on PostgreSQL, and /healthz keeps answering.
Each test probes /healthz while the hazard holds and asserts its typical answer time stays
within 50 ms: with the hazard on the loop, every probe would take as long as the hazard lasts.
"""

import sqlite3
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.support.live_server import LiveServer

PROBES = 10
HEALTHY_MS = 50


def _probe_healthz(base_url: str) -> list[float]:
    """Milliseconds each of a few /healthz calls took."""
    times = []
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for _ in range(PROBES):
            started = time.perf_counter()
            assert client.get("/healthz").status_code == 200
            times.append((time.perf_counter() - started) * 1000)
            time.sleep(0.02)
    return times


@contextmanager
def _writer_lock_held(database_url: str):
    """Another process's transaction holding what an order needs: SQLite's write lock, or
    PostgreSQL's row lock on product 1."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        other = sqlite3.connect(url.database, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            other.execute("ROLLBACK")
            other.close()
        return
    options = url.query.get("options")
    with psycopg.connect(
        host=url.host, port=url.port, user=url.username, dbname=url.database, options=options
    ) as other:
        other.execute("SELECT id FROM products WHERE id = 1 FOR UPDATE")
        yield
        other.rollback()


@pytest.mark.live
def test_healthz_answers_while_orders_wait_on_a_held_lock(
    live_server: Callable[..., AbstractContextManager[LiveServer]],
) -> None:
    with live_server() as server:
        created = httpx.post(
            f"{server.base_url}/products",
            json={"sku": "HELD-1", "name": "Held", "price": "1.00", "stock": 1000},
        )
        assert created.status_code == 201
        with (
            httpx.Client(base_url=server.base_url, timeout=60) as client,
            ThreadPoolExecutor(20) as pool,
        ):
            with _writer_lock_held(server.database_url):
                orders = [
                    pool.submit(client.post, "/orders", json={"product_id": 1, "quantity": 1})
                    for _ in range(20)
                ]
                time.sleep(0.5)  # let them reach the server; no assertion depends on it
                probes = _probe_healthz(server.base_url)
                waiting = sum(not order.done() for order in orders)
            statuses = [order.result(timeout=60).status_code for order in orders]

    assert waiting == 20, "the orders did not wait for the lock"
    assert statistics.median(probes) < HEALTHY_MS, probes
    assert statuses == [201] * 20


@pytest.mark.live
def test_healthz_answers_while_a_slow_scan_runs(
    live_server: Callable[..., AbstractContextManager[LiveServer]],
) -> None:
    with live_server() as server:
        _seed_products(server.database_url, 300_000)
        stop = threading.Event()
        scans: list[int] = []

        def scan_forever() -> None:
            with httpx.Client(base_url=server.base_url, timeout=60) as client:
                while not stop.is_set():
                    started = time.perf_counter()
                    response = client.get("/products", params={"q": "no such name"})
                    assert response.status_code == 200
                    scans.append(int((time.perf_counter() - started) * 1000))

        with ThreadPoolExecutor(2) as pool:
            running = [pool.submit(scan_forever) for _ in range(2)]
            time.sleep(0.3)
            probes = _probe_healthz(server.base_url)
            stop.set()
            for scan in running:
                scan.result(timeout=60)

    assert scans and max(scans) > HEALTHY_MS, f"the scan was not slow enough to tell: {scans}"
    assert statistics.median(probes) < HEALTHY_MS, probes


def _seed_products(database_url: str, count: int) -> None:
    rows = (
        (f"SCAN-{i}", f"Product {i}", 100, 1, "2026-01-01 00:00:00.000000") for i in range(count)
    )
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        with sqlite3.connect(url.database) as raw:
            raw.executemany(
                "INSERT INTO products (sku, name, price_cents, on_hand, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?5)",
                rows,
            )
        return
    with psycopg.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        dbname=url.database,
        options=url.query.get("options"),
    ) as raw:
        with raw.cursor().copy(
            "COPY products (sku, name, price_cents, on_hand, created_at, updated_at) FROM STDIN"
        ) as copy:
            for sku, name, price, stock, at in rows:
                copy.write_row((sku, name, price, stock, at, at))
