"""Readiness: the database's state as /readyz reports it, kept fresh in the background.

/readyz is a load balancer's health check: it must answer in milliseconds whatever the load, and say
"not ready" whenever the instance cannot serve. So it never queries the database itself: a
background task checks every READINESS_INTERVAL_SECONDS (app/db/readiness_probe.py) whether the
database answers, whether its schema is at the migration head (app/db/schema_check.py), and whether
it can write (disk space, read-only file or server), and /readyz reads the result. Storage errors
the data layer meets (`report_storage_error`) count too, for a while.

The schema gate the request path applies (`schema_behind`) is a plain attribute: no query per
request, ever; it only changes when a background check finds the schema migrated.
"""

import asyncio
import logging
import time

from app.core.errors import ApiError, database_unavailable
from app.db import readiness_probe, schema_check
from app.db.base import Database

# How long a storage error reported by the data layer keeps the instance unready.
STORAGE_ERROR_HOLD_SECONDS = 30.0
STORAGE_CODES = frozenset({"insufficient_storage", "database_read_only"})
log = logging.getLogger("app.readiness")
_reported: tuple[str, float] | None = None


def report_storage_error(code: str) -> None:
    """The data layer met `insufficient_storage` or `database_read_only`: /readyz says so.
    Other codes (an unreachable database) are the background check's own to find."""
    global _reported
    if code in STORAGE_CODES:
        _reported = (code, time.monotonic())


def storage_problem(code: str) -> ApiError:
    # 503 even for a full disk (a request would get 507): a probe's status says "not ready".
    if code == "insufficient_storage":
        return ApiError.not_ready(code, "The database's disk is full or nearly so.")
    return ApiError.not_ready(code, "The database refuses writes.")


class Readiness:
    def __init__(self, database: Database, interval: float, min_free_bytes: int) -> None:
        self.database, self.interval, self.min_free_bytes = database, interval, min_free_bytes
        # The request path refuses API calls while this is true (503 schema_out_of_date).
        self.schema_behind = False
        self._problem: ApiError | None = None
        self._checked_at = -float("inf")
        self._schema_reason: str | None = None
        self._check: asyncio.Future[readiness_probe.DatabaseState] | None = None

    async def refresh(self) -> None:
        """Check the database once (at most `interval` seconds; one check at a time)."""
        if self._check is None or self._check.done():
            self._check = asyncio.ensure_future(
                readiness_probe.check(self.database, self.min_free_bytes)
            )
        try:
            state = await asyncio.wait_for(asyncio.shield(self._check), self.interval)
        except Exception as error:  # unreachable, timed out, refused: all mean not ready
            if not isinstance(error, TimeoutError):
                self._check = None
            self._set(database_unavailable())
            log.debug("readiness check failed: %s", type(error).__name__)
            return
        self._schema(schema_check.explain(state.revisions))
        self._set(schema_check.schema_out_of_date() if self.schema_behind else self._storage(state))

    def _schema(self, reason: str | None) -> None:
        if reason is not None and reason != self._schema_reason:
            log.error("schema out of date: %s", reason)
        elif reason is None and self._schema_reason is not None:
            log.info("database schema is now at the migration head: serving")
        self._schema_reason, self.schema_behind = reason, reason is not None

    def _storage(self, state: readiness_probe.DatabaseState) -> ApiError | None:
        if state.storage is not None:
            return storage_problem(state.storage)
        if _reported is not None and time.monotonic() - _reported[1] < STORAGE_ERROR_HOLD_SECONDS:
            return storage_problem(_reported[0])
        return None

    def _set(self, problem: ApiError | None) -> None:
        was = self._problem.code if self._problem is not None else None
        now = problem.code if problem is not None else None
        if now != was and now not in (None, "schema_out_of_date"):  # the schema logs its own
            log.warning("not ready: %s", now)
        elif now is None and was is not None and self._checked_at > -float("inf"):
            log.info("ready again (was %s)", was)
        self._problem, self._checked_at = problem, time.monotonic()

    async def problem(self) -> ApiError | None:
        """What keeps the instance from being ready, or None; checks only when the last
        result is stale (no background task running, as in tests without a lifespan)."""
        if time.monotonic() - self._checked_at > 3 * self.interval:
            await self.refresh()
        return self._problem

    async def run_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.refresh()
