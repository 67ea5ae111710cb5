"""Idempotency-Key on POST /orders: a retry replays the first answer instead of ordering twice.

The key is claimed in the same transaction that places the order, so the two commit or vanish
together: a failed attempt (409, 404) leaves no key behind, and a key whose request died with
its process is free again as soon as the database has rolled that transaction back.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col

from app import orders
from app.database import no_lock_wait, retry_on_conflict, write_transaction
from app.errors import ApiError
from app.schemas import OrderCreate, OrderPublic
from app.tables import IdempotencyKey, Order
from app.types import utcnow

# PostgreSQL's lock_not_available: another transaction holds the key right now.
_LOCK_NOT_AVAILABLE = "55P03"


# What POST /orders answers: the order just placed, or the first answer replayed.
@dataclass(frozen=True)
class OrderAnswer:
    status_code: int
    body: dict[str, Any]
    replayed: bool = False

    @classmethod
    def created(cls, order: Order) -> "OrderAnswer":
        return cls(201, OrderPublic.of(order).model_dump(mode="json"))


def fingerprint(request: OrderCreate) -> str:
    """The same JSON value (key order and spacing aside) always gives the same fingerprint."""
    return hashlib.sha256(request.model_dump_json().encode()).hexdigest()


@retry_on_conflict()
def place_order_once(
    session: Session, key: str, request: OrderCreate, ttl: timedelta
) -> OrderAnswer:
    request_fingerprint = fingerprint(request)
    with write_transaction(session):
        earlier = _earlier_answer(session, key, request_fingerprint, ttl)
        if earlier is not None:
            return earlier
        if not _claim(session, key, request_fingerprint):
            # A concurrent request with this key committed between our read and our claim.
            earlier = _earlier_answer(session, key, request_fingerprint, ttl)
            assert earlier is not None
            return earlier
        answer = OrderAnswer.created(orders.record_order(session, request))
        stored = session.get(IdempotencyKey, key)
        assert stored is not None
        stored.status_code, stored.order_id = answer.status_code, answer.body["id"]
        stored.response_body = json.dumps(answer.body)
        session.add(stored)
    return answer


def _earlier_answer(
    session: Session, key: str, request_fingerprint: str, ttl: timedelta
) -> OrderAnswer | None:
    stored = session.get(IdempotencyKey, key, populate_existing=True)
    if stored is None:
        return None
    if stored.created_at < utcnow() - ttl:
        session.delete(stored)
        session.flush()
        return None
    if stored.request_fingerprint != request_fingerprint:
        raise ApiError(
            422,
            "idempotency_key_reused",
            "Idempotency-Key reused",
            "This Idempotency-Key was used with a different request body.",
            idempotency_key=key,
        )
    return OrderAnswer(stored.status_code, json.loads(stored.response_body), replayed=True)


def _claim(session: Session, key: str, request_fingerprint: str) -> bool:
    """Insert the key's row; False if another request committed it first."""
    row = IdempotencyKey(
        key=key,
        request_fingerprint=request_fingerprint,
        status_code=0,
        response_body="",
        created_at=utcnow(),
    )
    try:
        with session.begin_nested(), no_lock_wait(session):
            session.add(row)
            session.flush()
    except IntegrityError:
        return False
    except OperationalError as error:
        if getattr(error.orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
            raise
        raise ApiError(
            409,
            "idempotency_key_in_use",
            "Idempotency-Key in use",
            "A request with this Idempotency-Key is still being processed; retry shortly.",
            idempotency_key=key,
            headers={"Retry-After": "1"},
        ) from None
    return True


def purge_expired(session: Session, ttl: timedelta) -> int:
    """Forget keys older than the retention window; returns how many were removed."""
    with write_transaction(session):
        result = session.execute(
            delete(IdempotencyKey).where(col(IdempotencyKey.created_at) < utcnow() - ttl)
        )
    return result.rowcount
