"""Background chores each worker runs while it serves: forgetting expired Idempotency-Keys."""

import asyncio
import logging
from datetime import timedelta

from app import idempotency
from app.database import Database

PURGE_EVERY_SECONDS = 3600
log = logging.getLogger("app.housekeeping")


async def purge_forever(database: Database, ttl: timedelta) -> None:
    """Purge at start-up and then hourly; a failed round is logged and tried again later."""
    while True:
        try:
            purged = await database.write(idempotency.purge_expired, ttl)
            if purged:
                log.info("purged %d expired idempotency keys", purged)
        except Exception:
            log.warning("idempotency key purge failed; will retry", exc_info=True)
        await asyncio.sleep(PURGE_EVERY_SECONDS)
