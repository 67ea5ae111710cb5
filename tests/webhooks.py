"""Helpers for webhook tests: signed deliveries through a TestClient, and what they left behind."""

import json
import time
import uuid
from typing import Any

from fastapi.testclient import TestClient
from httpx import Response
from sqlmodel import Session, select

from app import signing
from app.tables import Order, PaymentEvent, Product

SECRET = "test-webhook-secret-old"
NEXT_SECRET = "test-webhook-secret-new"
URL = "/webhooks/payment"


def event_body(order: Order, type_: str = "payment.succeeded", **overrides: Any) -> bytes:
    body = {
        "type": type_,
        "order_id": order.id,
        "amount": f"{order.total_cents / 100:.2f}",
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


# The readers below re-read rows from the database and end their read transaction, so none
# stays open on the connection the app shares with the test (in-memory SQLite has only one).


def payment_events(session: Session) -> list[PaymentEvent]:
    events = list(
        session.exec(
            select(PaymentEvent).order_by(PaymentEvent.id).execution_options(populate_existing=True)
        ).all()
    )
    session.commit()
    return events


def current_order(session: Session, order_id: int) -> Order:
    order = session.get(Order, order_id, populate_existing=True)
    session.commit()
    assert order is not None
    return order


def order_status(session: Session, order_id: int) -> str:
    return current_order(session, order_id).status


def stock_of(session: Session, product_id: int) -> int:
    product = session.get(Product, product_id, populate_existing=True)
    session.commit()
    assert product is not None
    return product.stock
