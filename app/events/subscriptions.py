"""Push subscriptions and their delivery log: the rules behind /event-subscriptions.

A subscription's secret is shown in the answer that creates it or rotates it and nowhere else:
the public form of a subscription never carries it, and nothing logs it. After a rotation the
replaced secret signs beside the new one until it expires (`previous_secret`).

A disabled subscription is sent nothing: no delivery is queued for it while it is disabled
(app/events/outbox.py fans out to enabled ones only), and the deliveries it had pending wait,
unsent, until it is enabled again (app/events/delivery.py claims for enabled ones only).
`failing_since` is when its unbroken run of failed attempts began; `disable_failing` (a chore,
app/housekeeping.py) disables the subscriptions failing for FAILING_DAYS, with a
`subscription.disabled` event in the same transaction.
"""

import base64
import json
import logging
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from app.core.access import SYSTEM, acting_as
from app.core.errors import ApiError
from app.core.formats import utcnow
from app.db.base import Connection, Sql
from app.events import outbox
from app.events.outbox import rfc3339
from app.tables import DeliveryStatus, EventType

log = logging.getLogger("app.event_subscriptions")

SECRET_BYTES = 24
ALL_TYPES = "*"
# A subscription whose attempts have all failed for this long is disabled by the service.
FAILING_DAYS = 3
# How long a replaced secret keeps signing after a rotation, unless the rotation says.
DEFAULT_OVERLAP_SECONDS = 86400
# Subscriptions one run of the chore disables at most (the next run goes on).
DISABLE_BATCH = 100

_COLUMNS = "id, url, types, description, enabled, created_at"
_INSERT = Sql(
    "INSERT INTO event_subscriptions (url, types, description, enabled, secret, created_at)"
    f" VALUES (:url, :types, :description, :enabled, :secret, :now) RETURNING {_COLUMNS}"
)
_GET = Sql(f"SELECT {_COLUMNS} FROM event_subscriptions WHERE id = :id")
_PAGE = Sql(
    f"SELECT {_COLUMNS} FROM event_subscriptions WHERE id > :after ORDER BY id LIMIT :limit"
    " OFFSET :offset"
)
_COUNT = Sql("SELECT count(*) FROM event_subscriptions")
# PATCH: each column set to the value sent, or kept (a flag says which).
_UPDATE = Sql(
    "UPDATE event_subscriptions SET url = CASE WHEN :set_url THEN :url ELSE url END,"
    " types = CASE WHEN :set_types THEN :types ELSE types END,"
    " description = CASE WHEN :set_description THEN :description ELSE description END,"
    " enabled = CASE WHEN :set_enabled THEN :enabled ELSE enabled END,"
    # Enabled again (`enabled` is the old value here): its failing clock starts afresh.
    " failing_since = CASE WHEN :set_enabled AND :enabled AND NOT enabled THEN NULL"
    " ELSE failing_since END"
    f" WHERE id = :id RETURNING {_COLUMNS}"
)
_ROTATE = Sql(
    "UPDATE event_subscriptions SET previous_secret = CASE WHEN :overlap THEN secret END,"
    " previous_secret_expires_at = :expires_at, secret = :secret"
    f" WHERE id = :id RETURNING {_COLUMNS}, previous_secret_expires_at"
)
_FOR_SENDING = Sql(
    "SELECT id, url, secret, previous_secret, previous_secret_expires_at"
    " FROM event_subscriptions WHERE id = :id"
)
_GET_DELIVERY = Sql(
    "SELECT d.id, e.id AS event_id, e.type, d.attempt, d.status, d.response_status, d.error,"
    " d.duration_ms, d.attempted_at, d.next_attempt_at FROM event_deliveries d"
    " JOIN events e ON e.seq = d.event_seq WHERE d.id = :id AND d.subscription_id = :subscription"
)
# A failed delivery queued again: due now, with a fresh set of attempts.
_REQUEUE = Sql(
    "UPDATE event_deliveries SET status = 'pending', attempt = 0, next_attempt_at = :now,"
    " response_status = NULL, error = NULL, duration_ms = NULL, attempted_at = NULL"
    " WHERE id = :id AND subscription_id = :subscription AND status = 'failed'"
)
_FAILING = Sql(
    f"SELECT {_COLUMNS}, failing_since FROM event_subscriptions"
    " WHERE enabled AND failing_since <= :cutoff ORDER BY id LIMIT :limit"
)
# Disabled only if still failing since then: a success in between reset the clock.
_DISABLE = Sql(
    "UPDATE event_subscriptions SET enabled = false"
    f" WHERE id = :id AND enabled AND failing_since <= :cutoff RETURNING {_COLUMNS}"
)
# Deliveries go with their subscription (ON DELETE CASCADE, spelled out for clarity).
_DELETE_DELIVERIES = Sql("DELETE FROM event_deliveries WHERE subscription_id = :id")
_DELETE = Sql("DELETE FROM event_subscriptions WHERE id = :id")
_DELIVERIES = Sql(
    "SELECT d.id, e.id AS event_id, e.type, d.attempt, d.status, d.response_status, d.error,"
    " d.duration_ms, d.attempted_at, d.next_attempt_at FROM event_deliveries d"
    " JOIN events e ON e.seq = d.event_seq"
    " WHERE d.subscription_id = :id AND d.id < :before ORDER BY d.id DESC LIMIT :limit"
)
NO_CURSOR = 2**63 - 1


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and the base64 of 24 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def canonical_types(types: Sequence[str]) -> list[str]:
    """["*"] alone, or the distinct types in a stable order (the stored form)."""
    return [ALL_TYPES] if ALL_TYPES in types else sorted(set(types))


def subscription_not_found(subscription_id: int) -> ApiError:
    return ApiError(
        "not_found",
        f"Event subscription {subscription_id} does not exist.",
        subscription_id=subscription_id,
    )


def public(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "url": row["url"],
        "types": json.loads(row["types"]),
        "description": row["description"],
        "enabled": bool(row["enabled"]),
        "created_at": rfc3339(row["created_at"]),
    }


async def create(
    conn: Connection, *, url: str, types: Sequence[str], description: str | None
) -> dict[str, Any]:
    """Store a subscription (its URL already checked); the answer alone carries the secret."""
    secret = new_secret()
    row = await conn.fetch_one(
        _INSERT,
        {
            "url": url,
            "types": json.dumps(canonical_types(types)),
            "description": description,
            "enabled": True,
            "secret": secret,
            "now": utcnow(),
        },
    )
    assert row is not None
    return {**public(row), "secret": secret}


async def get(conn: Connection, subscription_id: int) -> dict[str, Any]:
    row = await conn.fetch_one(_GET, {"id": subscription_id})
    if row is None:
        raise subscription_not_found(subscription_id)
    return public(row)


async def page(
    conn: Connection, *, limit: int, offset: int, after: int | None
) -> tuple[list[dict[str, Any]], int | None]:
    """A page by id; the total only in offset mode (a cursor page makes no count)."""
    params = {"after": after or 0, "limit": limit, "offset": 0 if after else offset}
    rows = await conn.fetch_all(_PAGE, params)
    total = None if after else await conn.fetch_value(_COUNT)
    return [public(row) for row in rows], total


async def delete(conn: Connection, subscription_id: int) -> None:
    """Remove a subscription and its deliveries: nothing more is sent to it."""
    await conn.execute(_DELETE_DELIVERIES, {"id": subscription_id})
    if await conn.execute(_DELETE, {"id": subscription_id}) == 0:
        raise subscription_not_found(subscription_id)


async def update(
    conn: Connection, subscription_id: int, changes: Mapping[str, Any]
) -> dict[str, Any]:
    """Change the fields in `changes` (url already checked); the others stay as they are."""
    params: dict[str, Any] = {"id": subscription_id}
    for name in ("url", "types", "description", "enabled"):
        params[f"set_{name}"] = name in changes
        params[name] = changes.get(name)
    if params["types"] is not None:
        params["types"] = json.dumps(canonical_types(params["types"]))
    if params["enabled"] is None:
        params["enabled"] = False
    row = await conn.fetch_one(_UPDATE, params)
    if row is None:
        raise subscription_not_found(subscription_id)
    return public(row)


async def rotate_secret(
    conn: Connection, subscription_id: int, overlap_seconds: int = DEFAULT_OVERLAP_SECONDS
) -> dict[str, Any]:
    """A new secret, shown in this answer only; the one it replaces keeps signing beside it
    for `overlap_seconds` (0: not at all). A rotation during an overlap ends that overlap:
    only the secret just replaced signs on."""
    secret = new_secret()
    params = {
        "id": subscription_id,
        "secret": secret,
        "overlap": overlap_seconds > 0,
        "expires_at": utcnow() + timedelta(seconds=overlap_seconds) if overlap_seconds else None,
    }
    row = await conn.fetch_one(_ROTATE, params)
    if row is None:
        raise subscription_not_found(subscription_id)
    expires = row["previous_secret_expires_at"]
    return {**public(row), "secret": secret, "previous_secret_expires_at": rfc3339(expires)}


def signing_secrets(row: Mapping[str, Any], now: datetime) -> tuple[str, ...]:
    """The secrets a delivery is signed with now: the replaced one while it has not expired
    (first), and the current one."""
    previous, until = row["previous_secret"], row["previous_secret_expires_at"]
    if previous is not None and until is not None and until > now:
        return (previous, row["secret"])
    return (row["secret"],)


async def for_sending(conn: Connection, subscription_id: int) -> tuple[str, tuple[str, ...]]:
    """A subscription's URL and the secrets to sign with now (a test ping's)."""
    row = await conn.fetch_one(_FOR_SENDING, {"id": subscription_id})
    if row is None:
        raise subscription_not_found(subscription_id)
    return row["url"], signing_secrets(row, utcnow())


def delivery_not_found(subscription_id: int, delivery_id: int) -> ApiError:
    return ApiError(
        "not_found",
        f"Event subscription {subscription_id} has no delivery {delivery_id}.",
        subscription_id=subscription_id,
        delivery_id=delivery_id,
    )


async def retry_delivery(
    conn: Connection, subscription_id: int, delivery_id: int
) -> dict[str, Any]:
    """Queue a failed delivery again, due now, with a fresh set of attempts: it is sent with
    the same `webhook-id` (its event's id). 409 delivery_not_failed for one that is not failed.
    A disabled subscription's retried delivery waits, as its others do, until it is enabled."""
    params = {"id": delivery_id, "subscription": subscription_id}
    if await conn.execute(_REQUEUE, {**params, "now": utcnow()}) == 0:
        row = await conn.fetch_one(_GET_DELIVERY, params)
        if row is None:
            await get(conn, subscription_id)  # 404 for the subscription first
            raise delivery_not_found(subscription_id, delivery_id)
        raise ApiError(
            "delivery_not_failed",
            f"Delivery {delivery_id} is {row['status']}: only a failed delivery is sent again.",
            delivery_id=delivery_id,
            delivery_status=row["status"],
        )
    row = await conn.fetch_one(_GET_DELIVERY, params)
    assert row is not None and row["status"] == DeliveryStatus.PENDING
    outbox.recorded()  # wake this process's delivery worker
    return public_delivery(row)


async def disable_failing(conn: Connection, now: datetime | None = None) -> list[dict[str, Any]]:
    """Disable up to DISABLE_BATCH subscriptions whose attempts have all failed for
    FAILING_DAYS, each with a `subscription.disabled` event; the subscriptions disabled."""
    cutoff = (now or utcnow()) - timedelta(days=FAILING_DAYS)
    disabled = []
    for found in await conn.fetch_all(_FAILING, {"cutoff": cutoff, "limit": DISABLE_BATCH}):
        row = await conn.fetch_one(_DISABLE, {"id": found["id"], "cutoff": cutoff})
        if row is None:
            continue
        subscription = public(row)
        since = rfc3339(found["failing_since"])
        with acting_as(SYSTEM):  # the service's doing, whoever runs the chore
            await outbox.record(
                conn,
                EventType.SUBSCRIPTION_DISABLED,
                {"subscription": subscription, "reason": "failing", "failing_since": since},
            )
        log.warning(
            "event subscription disabled: every attempt failed for %d days",
            FAILING_DAYS,
            extra={"subscription_id": subscription["id"], "failing_since": since},
        )
        disabled.append(subscription)
    return disabled


def public_delivery(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "event_id": row["event_id"],
        "event_type": row["type"],
        "attempt": row["attempt"],
        "status": row["status"],
        "response_status": row["response_status"],
        "error": row["error"],
        "duration_ms": row["duration_ms"],
        "attempted_at": rfc3339(row["attempted_at"]),
        "next_attempt_at": rfc3339(row["next_attempt_at"]),
    }


async def deliveries(
    conn: Connection, subscription_id: int, *, limit: int, before: int | None
) -> list[dict[str, Any]]:
    """The subscription's deliveries, newest first, older than the delivery `before`."""
    await get(conn, subscription_id)
    params = {"id": subscription_id, "before": before or NO_CURSOR, "limit": limit}
    return [public_delivery(row) for row in await conn.fetch_all(_DELIVERIES, params)]
