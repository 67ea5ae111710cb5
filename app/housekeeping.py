"""Background chores each worker runs while it serves: forgetting expired Idempotency-Keys and
events past their retention, disabling event subscriptions whose attempts have all failed for 3
days, and the payment window (cancelling PENDING orders past their deadline). `run_once` is one
round of all of them, event deliveries included, for a scheduler to run while no worker serves
(`./run.sh chores`, app/chores.py): each chore is safe beside running workers, as several
workers are safe beside each other."""

import asyncio
import logging
from datetime import timedelta

from app import idempotency, orders
from app.core.config import Settings
from app.db.base import Database
from app.events import delivery, outbox, subscriptions

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
        await purge_keys(database, ttl)
        if event_retention is not None:
            await purge_events(database, event_retention)
            await disable_failing(database)
        await asyncio.sleep(PURGE_EVERY_SECONDS)


async def purge_keys(database: Database, ttl: timedelta) -> int | None:
    """Idempotency-Keys older than `ttl` go; None if the purge failed (logged)."""
    try:
        purged = await database.write(idempotency.purge_expired, ttl)
    except Exception:
        log.warning("idempotency key purge failed; will retry", exc_info=True)
        return None
    if purged:
        log.info("purged %d expired idempotency keys", purged)
    return purged


async def purge_events(database: Database, retention: timedelta) -> int | None:
    """Events older than `retention` go, in bounded batches, each its own short transaction;
    None if a batch failed (logged)."""
    purged = 0
    try:
        while (batch := await database.write(outbox.purge_expired, retention)) > 0:
            purged += batch
            if batch < outbox.PURGE_BATCH:
                break
    except Exception:
        log.warning("event purge failed; will retry", exc_info=True)
        return None
    if purged:
        log.info("purged %d events past their retention", purged)
    return purged


async def disable_failing(database: Database) -> int | None:
    """Disable the subscriptions whose attempts have all failed for 3 days, each with a
    `subscription.disabled` event and a log line; the number disabled, or None if it failed."""
    disabled = 0
    try:
        while batch := await database.write(subscriptions.disable_failing):
            disabled += len(batch)
            if len(batch) < subscriptions.DISABLE_BATCH:
                break
    except Exception:
        log.warning("disabling failing event subscriptions failed; will retry", exc_info=True)
        return None
    return disabled


async def expire_forever(database: Database, interval: float) -> None:
    """Every `interval` seconds, cancel the PENDING orders past their payment window.

    It runs whether or not PENDING_ORDER_TTL_SECONDS is set now: an order placed while it was
    set shows its deadline, and keeps it. Every worker of every instance runs this; the rule
    expires each order once however many run at the same time.
    """
    while True:
        await expire_due(database, EXPIRY_BATCHES_PER_ROUND)
        await asyncio.sleep(interval)


async def expire_due(database: Database, batches: int) -> int | None:
    """Cancel the PENDING orders past their deadline, at most `batches` batches; the number
    cancelled here, or None if a batch failed (logged)."""
    expired = 0
    try:
        for _ in range(batches):
            batch = await database.write(orders.expire_due)
            expired += batch
            if batch < orders.EXPIRY_BATCH:
                break
    except Exception:
        log.warning("order expiry failed; will retry", exc_info=True)
        return None
    return expired


async def deliver_due(database: Database, settings: Settings, rounds: int) -> int | None:
    """Send the event deliveries due now, at most `rounds` batches, as a worker's delivery loop
    does (claimed under a lease: never two senders at once); the number attempted, or None if a
    round failed (logged). A failed attempt is retried by a later run, at its retry time."""
    worker = delivery.DeliveryWorker(database, settings)
    attempted = 0
    try:
        for _ in range(rounds):
            sent = await worker.round()
            attempted += sent
            if not sent:
                break
    except Exception:
        log.warning("event delivery round failed; will retry", exc_info=True)
        return None
    finally:
        await worker.stop()
    return attempted


# One run of `./run.sh chores` works off a backlog this large at most (the next run goes on).
CHORE_EXPIRY_BATCHES = 100
CHORE_DELIVERY_ROUNDS = 100


async def run_once(database: Database, settings: Settings) -> dict[str, int | None]:
    """One round of every chore, then return what each did (None: it failed, and was logged)."""
    return {
        "orders_expired": await expire_due(database, CHORE_EXPIRY_BATCHES),
        "deliveries_attempted": await deliver_due(database, settings, CHORE_DELIVERY_ROUNDS),
        "idempotency_keys_purged": await purge_keys(
            database, timedelta(hours=settings.idempotency_ttl_hours)
        ),
        "events_purged": await purge_events(
            database, timedelta(days=settings.event_retention_days)
        ),
        "subscriptions_disabled": await disable_failing(database),
    }
