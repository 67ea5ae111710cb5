"""One SQLite writer at a time, queued in the process and across processes, not by SQLite.

SQLite admits one writer at a time and makes the others retry in its busy handler, which
sleeps 1, 2, 5 ... up to 100 ms between tries, so a queue of writers turns into a long latency
tail (p99 over a second at 64 connections and 2 workers). Writers queue here instead: the
threads of a process on a lock, and the one waiting thread of each process (uvicorn worker)
on an `flock` of a file next to the database, tried every millisecond. Both waits end, like
SQLite's, after the busy timeout, with the "database is locked" error (503).
"""

import sqlite3
import threading
import time
from typing import Any

from sqlalchemy.exc import OperationalError

try:
    import fcntl
except ImportError:  # Windows: threads still queue on the lock; processes meet SQLite's
    fcntl = None  # type: ignore[assignment]


# Held for the whole of a writing transaction; re-entrant within a thread.
class WriterLock:
    def __init__(self, database_path: str | None, timeout: float) -> None:
        self._threads = threading.RLock()
        self._depth = 0
        self._timeout = timeout
        self._file = open(f"{database_path}-lock", "ab") if database_path and fcntl else None

    def __enter__(self) -> None:
        deadline = time.monotonic() + self._timeout
        if not self._threads.acquire(timeout=self._timeout):
            raise _database_locked()
        self._depth += 1
        if self._file is not None and self._depth == 1:
            try:
                self._lock_file(deadline)
            except BaseException:
                self._depth -= 1
                self._threads.release()
                raise

    def __exit__(self, *_: Any) -> None:
        if self._file is not None and self._depth == 1:
            fcntl.flock(self._file, fcntl.LOCK_UN)
        self._depth -= 1
        self._threads.release()

    def _lock_file(self, deadline: float) -> None:
        assert self._file is not None
        while True:
            try:
                fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise _database_locked() from None
                time.sleep(0.001)


def _database_locked() -> OperationalError:
    return OperationalError("BEGIN IMMEDIATE", None, sqlite3.OperationalError("database is locked"))
