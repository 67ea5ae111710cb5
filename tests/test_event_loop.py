"""Regressions: the ways a worker stops answering under load although nothing is broken.

- A blocking database call inside `async def` stalls the event loop once the pool is
  exhausted (a public service of this kind serves 0 requests/s at 64 connections for this).
  Routes are `async def` and hand their unit of work to `Database.run`, which runs it, session
  and all, in a database thread: no route or dependency ever holds a session.
- Requests that wait for a pool connection inside worker threads while the requests holding
  the connections wait for a thread: a deadlock until the pool timeout (found by the
  benchmark: 0 requests/s after the first burst). There are no more database threads than
  pooled connections, so a unit of work never waits for one.
"""

import asyncio
import importlib
import pkgutil
import threading
import time
import typing
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from contextvars import ContextVar
from typing import Any

import httpx
import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sqlalchemy import Engine
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlmodel import Session, select

from app import routers
from app.config import Settings
from app.database import Database, create_db_engine, get_database, write_transaction
from app.tables import Product
from tests.live_server import LiveServer

STUCK_REQUESTS = 60  # many more than the worker's database threads


def _nodes(dependant: Dependant) -> list[Dependant]:
    return [dependant] + [node for sub in dependant.dependencies for node in _nodes(sub)]


def _routes() -> list[APIRoute]:
    """Every route of every router in app/routers."""
    routes = []
    for module in pkgutil.iter_modules(routers.__path__):
        router = getattr(importlib.import_module(f"app.routers.{module.name}"), "router", None)
        routes += [route for route in getattr(router, "routes", []) if isinstance(route, APIRoute)]
    return routes


def _takes_a_session(call: Callable[..., Any]) -> bool:
    hints = typing.get_type_hints(call)
    return any(isinstance(hint, type) and issubclass(hint, Session) for hint in hints.values())


def test_no_route_or_dependency_takes_a_session() -> None:
    routes = _routes()
    database_users = [
        route
        for route in routes
        if any(node.call is get_database for node in _nodes(route.dependant))
    ]
    assert len(database_users) > 10, "the walk over the routes' dependencies found too few"
    offenders = [
        f"{sorted(route.methods)} {route.path}: {node.call.__qualname__}"
        for route in routes
        for node in _nodes(route.dependant)
        if node.call and _takes_a_session(node.call)
    ]
    assert offenders == [], "a session in a route: hand the work to `Database.run` instead"


def test_the_check_spots_a_dependency_that_takes_a_session() -> None:
    def readyz(session: Session) -> None: ...

    assert _takes_a_session(readyz)
    assert not _takes_a_session(get_database)


def test_units_of_work_run_in_a_database_thread_with_the_callers_context(
    engine: Engine,
) -> None:
    database = Database(engine, threads=2, queue_timeout=10)
    request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

    def unit(session: Session, product_id: int) -> tuple[int, str | None, object]:
        found = session.get(Product, product_id)
        return threading.get_ident(), request_id.get(), found

    async def serve() -> tuple[int, tuple[int, str | None, object]]:
        request_id.set("req-1")
        return threading.get_ident(), await database.run(unit, 12345)

    loop_thread, (unit_thread, seen_id, found) = asyncio.run(serve())
    database.close()

    assert unit_thread != loop_thread
    assert seen_id == "req-1"
    assert found is None


def test_a_unit_of_work_that_queued_past_the_timeout_is_refused_without_running(
    engine: Engine,
) -> None:
    database = Database(engine, threads=1, queue_timeout=0.2)
    release = threading.Event()
    ran: list[str] = []

    def hold_the_only_thread(_session: Session) -> None:
        release.wait(timeout=10)

    def late(_session: Session) -> None:
        ran.append("late")

    async def serve() -> BaseException | None:
        holding = asyncio.ensure_future(database.run(hold_the_only_thread))
        queued = asyncio.ensure_future(database.run(late))
        await asyncio.sleep(0.4)
        release.set()
        await holding
        try:
            await queued
        except PoolTimeoutError as error:
            return error
        return None

    refused = asyncio.run(serve())
    database.close()

    assert isinstance(refused, PoolTimeoutError)
    assert ran == []


@pytest.mark.live
def test_healthz_answers_while_every_worker_thread_waits_on_the_database(
    live_server: Callable[..., AbstractContextManager[LiveServer]],
) -> None:
    with live_server() as server:
        created = httpx.post(
            f"{server.base_url}/products",
            json={"sku": "SLOW-1", "name": "Slow", "price": "1.00", "stock": 1000},
        )
        assert created.status_code == 201
        engine = create_db_engine(Settings(_env_file=None, database_url=server.database_url))
        with (
            httpx.Client(base_url=server.base_url, timeout=60) as client,
            ThreadPoolExecutor(STUCK_REQUESTS) as pool,
        ):
            # Hold product 1 (PostgreSQL: its row lock; SQLite: the write lock), so every
            # order for it waits inside the database and holds a worker thread meanwhile.
            with Session(engine) as holder, write_transaction(holder):
                holder.exec(select(Product).where(Product.id == 1).with_for_update()).one()
                orders = [
                    pool.submit(client.post, "/orders", json={"product_id": 1, "quantity": 1})
                    for _ in range(STUCK_REQUESTS)
                ]
                time.sleep(1.5)  # let them reach the server; no assertion depends on it
                health = httpx.get(f"{server.base_url}/healthz", timeout=10)
                waiting = sum(not order.done() for order in orders)
            statuses = [order.result(timeout=60).status_code for order in orders]
        engine.dispose()

    assert health.status_code == 200
    assert waiting == STUCK_REQUESTS, "the orders did not wait for the database"
    assert statuses == [201] * STUCK_REQUESTS


@pytest.mark.live
def test_many_more_requests_than_connections_all_get_served(
    live_server: Callable[..., AbstractContextManager[LiveServer]],
) -> None:
    # One connection and one database thread: the tightest case of the thread/pool deadlock.
    env = {
        "DB_POOL_SIZE": "1",
        "DB_MAX_OVERFLOW": "0",
        "DB_THREADS": "1",
        "DB_POOL_TIMEOUT_SECONDS": "60",
    }
    with live_server(env=env) as server:
        created = httpx.post(
            f"{server.base_url}/products",
            json={"sku": "P-1", "name": "Mug", "price": "1.00", "stock": 5},
        )
        assert created.status_code == 201
        with (
            httpx.Client(
                base_url=server.base_url, timeout=120, limits=httpx.Limits(max_connections=200)
            ) as client,
            ThreadPoolExecutor(STUCK_REQUESTS * 2) as pool,
        ):
            reads = list(
                pool.map(lambda _: client.get("/products/1").status_code, range(STUCK_REQUESTS * 2))
            )
    assert reads == [200] * (STUCK_REQUESTS * 2)


def test_more_database_threads_than_connections_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match=r"DB_THREADS \(4\) exceeds .* = 3"):
        Settings(_env_file=None, db_threads=4, db_pool_size=2, db_max_overflow=1)
    assert Settings(_env_file=None, db_threads=3, db_pool_size=2, db_max_overflow=1).db_threads == 3
