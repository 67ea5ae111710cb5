"""Helpers for webhook tests: signed deliveries through a TestClient, and what they left behind."""

import json
import time
import uuid
from typing import Any

from fastapi.testclient import TestClient
from httpx import Response

from app import signing
from tests.support.factories import Db, Record

SECRET = "test-webhook-secret-old"
NEXT_SECRET = "test-webhook-secret-new"
URL = "/webhooks/payment"


def event_body(order: Any, type_: str = "payment.succeeded", **overrides: Any) -> bytes:
    body = {
        "type": type_,
        "order_id": order["id"],
        "amount": order["total"],
        "payment_id": f"pay_{uuid.uuid4().hex[:12]}",
    }
    body.update(overrides)
    return json.dumps(body).encode()


def deliver(
    client: TestClient,
    body: bytes,
    *,
    secret: str = SECRET,
    event_id: str | None = None,
    timestamp: int | None = None,
    standard: bool = False,
    headers: dict[str, str] | None = None,
) -> Response:
    """POST a body signed with `secret` (our header style unless `standard`)."""
    event_id = event_id or f"evt_{uuid.uuid4().hex}"
    timestamp = int(time.time()) if timestamp is None else timestamp
    signed = signing.signed_headers([secret], event_id, timestamp, body, standard=standard)
    return client.post(
        URL, content=body, headers={"Content-Type": "application/json", **signed, **(headers or {})}
    )


# The readers below read the stored rows through the service's seam (latest committed state).


def payment_events(db: Db) -> list[Record]:
    return [Record(row) for row in db.rows("SELECT * FROM payment_events ORDER BY id")]


def current_order(db: Db, order_id: int) -> Record:
    rows = db.rows("SELECT * FROM orders WHERE id = :id", id=order_id)
    assert rows, f"no order {order_id}"
    return Record(rows[0])


def order_status(db: Db, order_id: int) -> str:
    return current_order(db, order_id).status


def stock_of(db: Db, product_id: int) -> int:
    return int(db.value("SELECT on_hand - committed FROM products WHERE id = :id", id=product_id))
