"""Regressions: the ways a worker stops answering under load although nothing is broken.

- A blocking database call inside `async def` stalls the event loop once the pool is
  exhausted (a public service of this kind serves 0 requests/s at 64 connections for this).
- `def` routes that wait for a pool connection inside worker threads, while the requests
  holding the connections wait for a thread to validate their response: a deadlock until
  the pool timeout (found by the benchmark: 0 requests/s after the first burst).
"""

import importlib
import inspect
import pkgutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sqlmodel import Session, select

from app import routers
from app.config import Settings
from app.database import create_db_engine, get_session, write_transaction
from app.models import Product
from tests.live_server import LiveServer

STUCK_REQUESTS = 60  # more than the 40 threads of the worker's thread pool


def _calls(dependant: Dependant) -> list[Callable[..., Any]]:
    calls = [dependant.call] if dependant.call else []
    for sub in dependant.dependencies:
        calls += _calls(sub)
    return calls


def _nodes(dependant: Dependant) -> list[Dependant]:
    return [dependant] + [node for sub in dependant.dependencies for node in _nodes(sub)]


def _session_routes() -> list[APIRoute]:
    """Every route of every router in app/routers whose dependencies open a session."""
    routes = []
    for module in pkgutil.iter_modules(routers.__path__):
        router = getattr(importlib.import_module(f"app.routers.{module.name}"), "router", None)
        routes += [route for route in getattr(router, "routes", [])
                   if isinstance(route, APIRoute) and get_session in _calls(route.dependant)]
    return routes


def _is_async(call: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call)


def test_no_route_or_dependency_that_uses_the_session_is_async() -> None:
    routes = _session_routes()
    assert len(routes) > 5, "the walk over the routes' dependencies found no session users"
    offenders = [
        f"{sorted(route.methods)} {route.path}: {node.call.__qualname__}"
        for route in routes
        for node in _nodes(route.dependant)
        if node.call and _is_async(node.call) and get_session in _calls(node)[1:]
    ]
    assert offenders == [], "blocking session calls inside `async def`: use `def`"


@pytest.mark.live
def test_healthz_answers_while_every_worker_thread_waits_on_the_database(
    live_server: Callable[..., AbstractContextManager[LiveServer]],
) -> None:
    with live_server() as server:
        created = httpx.post(f"{server.base_url}/products",
                             json={"sku": "SLOW-1", "name": "Slow", "price": "1.00",
                                   "stock": 1000})
        assert created.status_code == 201
        engine = create_db_engine(Settings(_env_file=None, database_url=server.database_url))
        with httpx.Client(base_url=server.base_url, timeout=60) as client, \
                ThreadPoolExecutor(STUCK_REQUESTS) as pool:
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
    # One connection and 40 worker threads: the tightest case of the thread/pool deadlock.
    env = {"DB_POOL_SIZE": "1", "DB_MAX_OVERFLOW": "0", "DB_POOL_TIMEOUT_SECONDS": "60"}
    with live_server(env=env) as server:
        created = httpx.post(f"{server.base_url}/products",
                             json={"sku": "P-1", "name": "Mug", "price": "1.00", "stock": 5})
        assert created.status_code == 201
        with httpx.Client(base_url=server.base_url, timeout=120,
                          limits=httpx.Limits(max_connections=200)) as client, \
                ThreadPoolExecutor(STUCK_REQUESTS * 2) as pool:
            reads = list(pool.map(lambda _: client.get("/products/1").status_code,
                                  range(STUCK_REQUESTS * 2)))
    assert reads == [200] * (STUCK_REQUESTS * 2)
