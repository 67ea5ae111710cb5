"""Background chores each worker runs while it serves: forgetting expired Idempotency-Keys and
events past their retention."""

import asyncio
import logging
from datetime import timedelta

from app import events, idempotency
from app.database import Database

PURGE_EVERY_SECONDS = 3600
log = logging.getLogger("app.housekeeping")


async def purge_forever(
    database: Database, ttl: timedelta, event_retention: timedelta | None = None
) -> None:
    """Purge at start-up and then hourly; a failed round is logged and tried again later."""
    while True:
        try:
            purged = await database.write(idempotency.purge_expired, ttl)
            if purged:
                log.info("purged %d expired idempotency keys", purged)
        except Exception:
            log.warning("idempotency key purge failed; will retry", exc_info=True)
        if event_retention is not None:
            await purge_events(database, event_retention)
        await asyncio.sleep(PURGE_EVERY_SECONDS)


async def purge_events(database: Database, retention: timedelta) -> int:
    """Events older than `retention` go, in bounded batches, each its own short transaction."""
    purged = 0
    try:
        while (batch := await database.write(events.purge_expired, retention)) > 0:
            purged += batch
            if batch < events.PURGE_BATCH:
                break
    except Exception:
        log.warning("event purge failed; will retry", exc_info=True)
    if purged:
        log.info("purged %d events past their retention", purged)
    return purged
