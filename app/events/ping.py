"""A subscription's test ping: a signed event of type `ping`, sent now to the subscription's
URL as a delivery is sent (URL check and resolver, timeout, signatures), and what the receiver
answered. Not a delivery: nothing is stored, retried or counted, and no other subscriber gets
it (POST /event-subscriptions/{id}/test, docs/events.md)."""

from typing import Any

from app.core.access import current_actor
from app.core.config import Settings
from app.core.formats import utcnow
from app.events import outbox
from app.events.delivery import DeliveryWorker, Job, new_client, post

# The ping's event type: sent, never stored, not one of the types one subscribes to.
PING = "ping"


def ping_event(subscription_id: int) -> dict[str, Any]:
    """A test ping: an event of type `ping` that is never stored, with a fresh id."""
    return {
        "id": outbox.new_event_id(),
        "type": PING,
        "created_at": outbox.rfc3339(utcnow()),
        "actor": current_actor(),
        "data": {"subscription_id": subscription_id},
    }


async def ping(
    subscription_id: int,
    url: str,
    secrets: tuple[str, ...],
    settings: Settings,
    worker: DeliveryWorker | None = None,
) -> dict[str, Any]:
    """Send a signed test ping to `url` now, as a delivery is sent (URL check, resolver,
    timeout, signatures: the worker's own client and resolver when there is one), and say
    what the receiver answered. Not a delivery: nothing is stored, retried or counted."""
    previous = secrets[0] if len(secrets) > 1 else None
    job = Job(0, 1, "", ping_event(subscription_id), url, secrets[-1], subscription_id,
              previous_secret=previous)  # fmt: skip
    if worker is not None:
        result = await post(worker.client, job, settings, worker.resolver)
    else:
        async with new_client(settings) as client:
            result = await post(client, job, settings)
    return {
        "event_id": job.event["id"],
        "delivered": result.result == "success",
        "result": result.result,
        "response_status": result.response_status,
        "duration_ms": result.duration_ms,
        "error": result.error,
    }
