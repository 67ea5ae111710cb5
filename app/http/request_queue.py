"""Admission: how many requests a worker works on at once, and who waits for a turn.

Without a bound, an overloaded worker takes every request, each waits behind all the others,
clients time out and retry, and the work of the requests they gave up on still runs (orders
placed for nobody). So a worker works on at most `limit` requests at once; up to `queue_limit`
more wait in arrival order, each at most `timeout` seconds; anything beyond is refused at once
(503 `overloaded`, from app/http/request_path.py) before any of its work starts: while
`full()`, before its key is checked or its body read. A refusal costs a few microseconds, so
refusing is what keeps the worker answering.
"""

import asyncio
from collections import deque

from app.core.errors import ApiError


def overloaded(retry_after: int = 1) -> ApiError:
    return ApiError(
        "overloaded",
        "The service has more requests than it takes at once; try again shortly.",
        headers={"Retry-After": str(retry_after)},
    )


# Turns to work, `limit` at a time; waiters queue in arrival order until their deadline.
class Admission:
    def __init__(self, limit: int, queue_limit: int, timeout: float) -> None:
        self.limit, self.queue_limit, self.timeout = limit, queue_limit, timeout
        self.in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    def full(self) -> bool:
        """Whether `acquire` would refuse at once: no turn free and no room in the queue."""
        busy = self.in_flight >= self.limit or bool(self._waiters)
        return busy and len(self._waiters) >= self.queue_limit

    async def acquire(self) -> bool:
        """Take a turn; False when none came free in time or the queue is full."""
        if self.in_flight < self.limit and not self._waiters:
            self.in_flight += 1
            return True
        if len(self._waiters) >= self.queue_limit:
            return False
        turn = asyncio.get_running_loop().create_future()
        self._waiters.append(turn)
        try:
            async with asyncio.timeout(self.timeout):
                await turn
        except TimeoutError:
            self._give_back(turn)
            return False
        except asyncio.CancelledError:
            self._give_back(turn)
            raise
        return True

    def _give_back(self, turn: asyncio.Future[None]) -> None:
        if turn.done() and not turn.cancelled():
            self.release()  # handed a turn just as the wait ended: pass it on
        elif turn in self._waiters:
            self._waiters.remove(turn)

    def release(self) -> None:
        """End a turn: hand it to the oldest waiter, or free it."""
        while self._waiters:
            turn = self._waiters.popleft()
            if not turn.done():
                turn.set_result(None)  # in_flight stays: the turn changes hands
                return
        self.in_flight -= 1
