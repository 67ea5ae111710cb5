"""Background chores each worker runs while it serves: forgetting expired Idempotency-Keys."""

import asyncio
import logging
from datetime import timedelta

from sqlalchemy import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from app import idempotency

PURGE_EVERY_SECONDS = 3600
log = logging.getLogger("app.housekeeping")


def purge_expired_keys(engine: Engine, ttl: timedelta) -> int:
    with Session(engine) as session:
        return idempotency.purge_expired(session, ttl)


async def purge_forever(engine: Engine, ttl: timedelta) -> None:
    """Purge at start-up and then hourly; a failed round is logged and tried again later."""
    while True:
        try:
            purged = await run_in_threadpool(purge_expired_keys, engine, ttl)
            if purged:
                log.info("purged %d expired idempotency keys", purged)
        except Exception:
            log.warning("idempotency key purge failed; will retry", exc_info=True)
        await asyncio.sleep(PURGE_EVERY_SECONDS)
