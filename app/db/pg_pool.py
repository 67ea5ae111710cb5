"""The PostgreSQL connections of one event loop: a free one is handed out and taken back with
no task, timer or await.

Why not asyncpg's pool: its acquire and release cost ~70 µs of CPU a request (bench/README.md "The
service's own PostgreSQL pool"), more than the query they wrap (~25 µs): `acquire(timeout=)` runs in
a task of its own (`wait_for`), `release` in another (`shield`), and each release resets the
connection and re-arms an idle timer. This pool keeps only what the service needs: at most
`max_size` connections opened on demand, the free ones in a stack (the most recently used first),
and waiters served in arrival order within their timeout. A connection that comes back unusable
(closed, still in a transaction, or from a unit interrupted mid-statement) is closed, not
reused, and its place goes to the next waiter.
"""

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable

import asyncpg


class PoolClosed(Exception):
    """The pool is closing: no more connections are handed out."""


class ConnectionPool:
    def __init__(self, connect: Callable[[], Awaitable[asyncpg.Connection]], max_size: int) -> None:
        self._connect, self.max_size = connect, max_size
        self._free: list[asyncpg.Connection] = []
        self._in_use: set[asyncpg.Connection] = set()
        self._opening = 0
        # Each waiter's future gets a connection, or None: a place freed for it to open one.
        self._waiters: deque[asyncio.Future[asyncpg.Connection | None]] = deque()
        self._closing = False

    def get_size(self) -> int:
        """Connections open or opening."""
        return len(self._free) + len(self._in_use) + self._opening

    def get_idle_size(self) -> int:
        return len(self._free)

    async def acquire(self, timeout: float) -> asyncpg.Connection:
        if self._closing:
            raise PoolClosed
        while self._free:
            raw = self._free.pop()
            if not raw.is_closed():
                self._in_use.add(raw)
                return raw
        if self.get_size() < self.max_size:
            return await self._open(timeout)
        waiter: asyncio.Future[asyncpg.Connection | None] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                raw = await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Handed something just as the wait ended: pass it on.
                self._pass_on(waiter.result())
            elif not waiter.done():
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise
        if raw is None:  # a place, not a connection
            return await self._open(timeout)
        return raw

    async def _open(self, timeout: float) -> asyncpg.Connection:
        self._opening += 1
        try:
            async with asyncio.timeout(timeout):
                raw = await self._connect()
        except BaseException:
            self._opening -= 1
            self._pass_on(None)
            raise
        self._opening -= 1
        if self._closing:
            raw.terminate()
            raise PoolClosed
        self._in_use.add(raw)
        return raw

    def release(self, raw: asyncpg.Connection, *, reusable: bool = True) -> None:
        """Take a connection back; `reusable=False` (its unit was interrupted mid-statement, or
        the connection failed) closes it instead."""
        self._in_use.discard(raw)
        if not reusable or raw.is_closed() or raw.is_in_transaction():
            raw.terminate()
            self._pass_on(None)
        elif self._closing:
            self._free.append(raw)  # `close` closes it
        else:
            self._pass_on(raw)

    def _pass_on(self, raw: asyncpg.Connection | None) -> None:
        """Give a connection (or a free place, None) to the first waiter still waiting."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                if raw is not None:
                    self._in_use.add(raw)
                waiter.set_result(raw)
                return
        if raw is not None:
            self._free.append(raw)

    async def close(self, timeout: float) -> None:
        """Stop handing out connections, wait up to `timeout` for those in use to come back,
        then close every one (those still out are cut off)."""
        self._closing = True
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(PoolClosed())
        self._waiters.clear()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._in_use and loop.time() < deadline:
            await asyncio.sleep(0.01)
        free, self._free = self._free, []
        for raw in free:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(raw.close(), max(0.1, deadline - loop.time()))
            if not raw.is_closed():
                raw.terminate()
        self.terminate()

    def terminate(self) -> None:
        """Cut every connection off at once (the pool's loop may be gone)."""
        self._closing = True
        for raw in [*self._free, *self._in_use]:
            with contextlib.suppress(Exception):
                raw.terminate()
        self._free.clear()
        self._in_use.clear()
