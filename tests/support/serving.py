"""The app in-process with its lifespan, as the API tests serve it: `with serving(app) as
client:` is `with TestClient(app) as client:`, but the service is stopped only once no unit of
work is in flight.

Why: the lifespan starts the service's chores (the idempotency and event purges, the expiry
sweep) at once, and stops them by cancelling. On PostgreSQL a unit cancelled mid-statement
once could not return its connection to the pool the shutdown was closing, so `pool.close()`
waited out its 10 s timeout; the service now returns it (app/db/postgresql.py, tested in
tests/unit/test_database.py). The wait remains so that a test ends with its chores finished
rather than cut off mid-statement; it makes no test see less of the service.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.support.response_shapes import check_responses


@contextmanager
def serving(app: FastAPI, **options: Any) -> Iterator[TestClient]:
    with TestClient(app, **options) as client:
        check_responses(client, app)  # every JSON response against its route's model
        yield client
        wait_until_idle(app)


def wait_until_idle(app: FastAPI, quiet: float = 0.05, timeout: float = 2.0) -> None:
    """Return once no PostgreSQL connection of the app has been in use for `quiet` seconds
    (SQLite: at once), or after `timeout` seconds whatever the pool does."""
    database = app.state.database
    if not hasattr(database, "_pool"):
        return  # SQLite: no pool, and its stop is quick whatever is in flight
    deadline = time.monotonic() + timeout
    idle_since = time.monotonic()
    while (now := time.monotonic()) < deadline:
        pool = database._pool
        if pool is not None and pool.get_size() > pool.get_idle_size():
            idle_since = now
        elif now - idle_since >= quiet:
            return
        time.sleep(0.005)
