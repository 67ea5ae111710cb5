"""Idempotency-Key: a retry replays the first answer instead of doing the work twice.

One mechanism for every operation that takes a key, each in a key space of its own
("orders", "stock-adjustments", ...), and scoped by the caller's API key (its principal), so
the same key sent by two clients is two keys. The key is stored in the same transaction as
the work it guards, so the two commit or vanish together: a failed attempt (409, 404) leaves
no key behind, and a key whose request died with its process is free again as soon as the
database has rolled that transaction back.

While a first request holds a key, a second one with the same key is 409
`idempotency_key_in_use`: on SQLite the writer turn already serializes them (the second finds
the first's committed key and replays it); on PostgreSQL a transaction-scoped advisory lock on
the key, tried without waiting, says so.
"""

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from app.core.errors import ApiError
from app.core.formats import utcnow
from app.db.base import Connection, RaceLost, Sql

_STORED = (
    "k.request_fingerprint, k.status_code, k.response_body, k.created_at "
    "FROM (SELECT 1 AS one) AS one LEFT JOIN idempotency_keys AS k "
    "ON k.space = :space AND k.principal = :principal AND k.key = :key"
)
_CLAIM = Sql(
    sqlite=f"SELECT 1 AS free, {_STORED}",
    postgresql=f"SELECT pg_try_advisory_xact_lock(hashtextextended(:lock_name, 0)) AS free, "
    f"{_STORED}",
)
_FORGET = Sql(
    "DELETE FROM idempotency_keys WHERE space = :space AND principal = :principal AND key = :key"
)
_STORE = Sql(
    "INSERT INTO idempotency_keys (space, principal, key, request_fingerprint, status_code, "
    "response_body, created_at) VALUES (:space, :principal, :key, :fingerprint, :status_code, "
    ":response_body, :now) ON CONFLICT DO NOTHING RETURNING 1"
)
_PURGE = Sql("DELETE FROM idempotency_keys WHERE created_at < :cutoff")
# How long a key is remembered unless the caller says otherwise (IDEMPOTENCY_TTL_HOURS).
DEFAULT_TTL = timedelta(hours=24)


# An answer: the work just done, or the first answer replayed.
@dataclass(frozen=True)
class Answer:
    status_code: int
    body: Any
    replayed: bool = False


def fingerprint(request: Any) -> str:
    """The same JSON value (key order and spacing aside) always gives the same fingerprint."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _in_use(key: str) -> ApiError:
    return ApiError(
        "idempotency_key_in_use",
        "A request with this Idempotency-Key is still being processed; retry shortly.",
        idempotency_key=key,
        headers={"Retry-After": "1"},
    )


def _reused(key: str) -> ApiError:
    return ApiError(
        "idempotency_key_reused",
        "This Idempotency-Key was used with a different request body.",
        idempotency_key=key,
    )


async def once(
    conn: Connection,
    *,
    space: str,
    principal: str | None,
    key: str,
    request: Any,
    create: Callable[[Connection], Awaitable[tuple[int, Any]]],
    ttl: timedelta = DEFAULT_TTL,
) -> Answer:
    """`create(conn)` once per (space, principal, key); a retry with the same `request` (a JSON
    value) replays its (status, body); another request under the key is 422."""
    names = {"space": space, "principal": principal or "", "key": key}
    request_fingerprint = fingerprint(request)
    stored = await conn.fetch_one(
        _CLAIM, {**names, "lock_name": f"{space}\x1f{names['principal']}\x1f{key}"}
    )
    assert stored is not None
    if not stored["free"]:
        raise _in_use(key)
    if stored["request_fingerprint"] is not None:
        if stored["created_at"] < utcnow() - ttl:
            await conn.execute(_FORGET, names)
        elif stored["request_fingerprint"] != request_fingerprint:
            raise _reused(key)
        else:
            return Answer(stored["status_code"], json.loads(stored["response_body"]), True)
    status_code, body = await create(conn)
    kept = await conn.fetch_value(
        _STORE,
        {
            **names,
            "fingerprint": request_fingerprint,
            "status_code": status_code,
            "response_body": json.dumps(body),
            "now": utcnow(),
        },
    )
    if kept is None:
        # Another request stored this key after our look: run again, and replay its answer.
        raise RaceLost(f"idempotency key {space} stored concurrently")
    return Answer(status_code, body)


async def purge_expired(conn: Connection, ttl: timedelta) -> int:
    """Forget keys older than the retention window; returns how many were removed."""
    return await conn.execute(_PURGE, {"cutoff": utcnow() - ttl})
