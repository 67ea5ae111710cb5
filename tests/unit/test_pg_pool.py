"""The service's PostgreSQL connection pool (app/db/pg_pool.py), against the real server: the
cap, waiters in order within their timeout, unusable connections closed, and close."""

import asyncio

import asyncpg
import pytest

from app.db.pg_pool import ConnectionPool, PoolClosed
from app.db.postgresql import connect_arguments
from tests.support.databases import CONFIGURED_URL, require_postgres


@pytest.fixture(autouse=True)
def _postgres() -> None:
    require_postgres()


def _pool(max_size: int) -> tuple[ConnectionPool, list[asyncpg.Connection]]:
    opened: list[asyncpg.Connection] = []

    async def connect() -> asyncpg.Connection:
        raw = await asyncpg.connect(**connect_arguments(CONFIGURED_URL))
        opened.append(raw)
        return raw

    return ConnectionPool(connect, max_size), opened


def run(scenario):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(scenario, 30))


def test_a_free_connection_is_reused_and_the_cap_holds():
    async def scenario() -> None:
        pool, opened = _pool(2)
        first = await pool.acquire(5)
        pool.release(first)
        assert await pool.acquire(5) is first  # no second connection for a sequential user
        second = await pool.acquire(5)
        assert (len(opened), pool.get_size(), pool.get_idle_size()) == (2, 2, 0)
        with pytest.raises(TimeoutError):
            await pool.acquire(0.2)  # the cap: a third waits, and gives up at its timeout
        assert len(opened) == 2
        pool.release(first)
        pool.release(second)
        await pool.close(5)
        assert all(raw.is_closed() for raw in opened)

    run(scenario())


def test_waiters_are_served_in_arrival_order_as_connections_come_back():
    async def scenario() -> list[int]:
        pool, opened = _pool(1)
        held = await pool.acquire(5)
        served: list[int] = []

        async def wait(n: int) -> None:
            raw = await pool.acquire(5)
            served.append(n)
            await asyncio.sleep(0.01)
            pool.release(raw)

        waiters = [asyncio.create_task(wait(n)) for n in range(5)]
        await asyncio.sleep(0.05)
        assert served == []
        pool.release(held)
        await asyncio.gather(*waiters)
        assert len(opened) == 1
        await pool.close(5)
        return served

    assert run(scenario()) == [0, 1, 2, 3, 4]


def test_an_unusable_connection_is_closed_and_its_place_goes_to_a_waiter():
    async def scenario() -> None:
        pool, opened = _pool(1)
        raw = await pool.acquire(5)
        waiter = asyncio.create_task(pool.acquire(5))
        await asyncio.sleep(0.05)
        await raw.execute("BEGIN")  # left in a transaction: never handed out again
        pool.release(raw)
        replacement = await waiter
        assert replacement is not raw and raw.is_closed()
        assert await replacement.fetchval("SELECT 1") == 1
        pool.release(replacement, reusable=False)  # e.g. its unit was cut off mid-statement
        assert replacement.is_closed() and pool.get_size() == 0
        again = await pool.acquire(5)
        assert again not in (raw, replacement) and len(opened) == 3
        pool.release(again)
        await pool.close(5)

    run(scenario())


def test_a_waiter_that_timed_out_takes_nothing_with_it():
    async def scenario() -> None:
        pool, _ = _pool(1)
        held = await pool.acquire(5)
        with pytest.raises(TimeoutError):
            await pool.acquire(0.05)
        pool.release(held)
        assert pool.get_idle_size() == 1  # not handed to the waiter that left
        assert await pool.acquire(5) is held
        pool.release(held)
        await pool.close(5)

    run(scenario())


def test_close_refuses_new_and_waiting_acquires_and_closes_what_comes_back():
    async def scenario() -> None:
        pool, opened = _pool(1)
        held = await pool.acquire(5)
        waiter = asyncio.create_task(pool.acquire(5))
        await asyncio.sleep(0.05)
        closing = asyncio.create_task(pool.close(5))
        await asyncio.sleep(0.05)
        with pytest.raises(PoolClosed):
            await waiter
        with pytest.raises(PoolClosed):
            await pool.acquire(5)
        assert not closing.done()  # waits for the connection in use
        pool.release(held)
        await closing
        assert held.is_closed() and pool.get_size() == 0

    run(scenario())
