"""Background chores each worker runs while it serves: forgetting expired Idempotency-Keys and
events past their retention, and the payment window (cancelling PENDING orders past their
deadline)."""

import asyncio
import logging
from datetime import timedelta

from app import idempotency, orders
from app.core.config import Settings
from app.db.base import Database
from app.events import outbox

PURGE_EVERY_SECONDS = 3600
# Batches one expiry round runs at most before it waits for the next interval: a backlog is
# worked off over a few rounds instead of holding the writer for one long stretch.
EXPIRY_BATCHES_PER_ROUND = 10
log = logging.getLogger("app.housekeeping")


async def run(database: Database, settings: Settings) -> None:
    """Every chore of a worker, until cancelled (at shutdown)."""
    ttl = timedelta(hours=settings.idempotency_ttl_hours)
    retention = timedelta(days=settings.event_retention_days)
    await asyncio.gather(
        purge_forever(database, ttl, retention),
        expire_forever(database, settings.housekeeping_interval_seconds),
    )


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
        while (batch := await database.write(outbox.purge_expired, retention)) > 0:
            purged += batch
            if batch < outbox.PURGE_BATCH:
                break
    except Exception:
        log.warning("event purge failed; will retry", exc_info=True)
    if purged:
        log.info("purged %d events past their retention", purged)
    return purged


async def expire_forever(database: Database, interval: float) -> None:
    """Every `interval` seconds, cancel the PENDING orders past their payment window.

    It runs whether or not PENDING_ORDER_TTL_SECONDS is set now: an order placed while it was
    set shows its deadline, and keeps it. Every worker of every instance runs this; the rule
    expires each order once however many run at the same time.
    """
    while True:
        try:
            for _ in range(EXPIRY_BATCHES_PER_ROUND):
                if await database.write(orders.expire_due) < orders.EXPIRY_BATCH:
                    break
        except Exception:
            log.warning("order expiry failed; will retry", exc_info=True)
        await asyncio.sleep(interval)
