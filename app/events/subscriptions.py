"""Push subscriptions and their delivery log: the rules behind /event-subscriptions.

A subscription's secret is shown in the answer that creates it and nowhere else: the public
form of a subscription never carries it, and nothing logs it.
"""

import base64
import json
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from app.core.errors import ApiError
from app.core.formats import utcnow
from app.db.base import Connection, Sql
from app.events.outbox import rfc3339

SECRET_BYTES = 24
ALL_TYPES = "*"

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
