"""Every numeric setting is bounded to values the service works with: one past a bound stops
the service at start (a ValidationError naming it), never a 500 on every request later."""

from datetime import timedelta
from typing import Any

import annotated_types
import pytest
from pydantic import ValidationError

from app import orders
from app.core.config import Settings
from app.schemas import OrderCreate
from tests.support.factories import Db, make_product

MAX_PAYMENT_WINDOW = 366 * 24 * 3600


def bounds(name: str) -> set[type]:
    kinds = {type(item) for item in Settings.model_fields[name].metadata}
    return kinds & {annotated_types.Gt, annotated_types.Ge, annotated_types.Lt, annotated_types.Le}


NUMERIC = [
    name
    for name, field in Settings.model_fields.items()
    if {int, float} & ({field.annotation} | set(getattr(field.annotation, "__args__", ())))
]
assert len(NUMERIC) > 20, NUMERIC


@pytest.mark.parametrize("name", NUMERIC)
def test_every_numeric_setting_has_a_lower_and_an_upper_bound(name: str):
    found = bounds(name)
    assert found & {annotated_types.Gt, annotated_types.Ge}, f"{name} has no lower bound"
    assert found & {annotated_types.Lt, annotated_types.Le}, f"{name} has no upper bound"


@pytest.mark.parametrize(
    "name, value",
    [
        ("PENDING_ORDER_TTL_SECONDS", "400000000000"),
        ("PENDING_ORDER_TTL_SECONDS", str(MAX_PAYMENT_WINDOW + 1)),
        ("SQLITE_BUSY_TIMEOUT_MS", "99999999999"),
        ("DB_POOL_TIMEOUT_SECONDS", "inf"),
        ("QUEUE_TIMEOUT_SECONDS", "inf"),
        ("BODY_READ_TIMEOUT_SECONDS", "1e300"),
        ("READINESS_INTERVAL_SECONDS", "1e-9"),
        ("HOUSEKEEPING_INTERVAL_SECONDS", "nan"),
        ("MAX_BODY_BYTES", str(1 << 40)),
    ],
)
def test_a_setting_past_its_range_is_refused_at_start(monkeypatch, name: str, value: str):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name.lower()):
        Settings(_env_file=None)


def test_an_order_at_the_longest_payment_window_is_placed_and_shown(db: Db):
    settings: Any = Settings(_env_file=None, pending_order_ttl_seconds=MAX_PAYMENT_WINDOW)
    assert settings.payment_window == timedelta(seconds=MAX_PAYMENT_WINDOW)
    product = make_product(db, stock=3)
    request = OrderCreate.model_validate({"product_id": product["id"], "quantity": 1})

    order = db.write(orders.place_order, request, payment_window=settings.payment_window)

    assert order["expires_at"] > order["created_at"]
    assert db.read(orders.order_view, order["id"])["expires_at"] == order["expires_at"]
