"""Each list of values is one enum or table that the rest derives from, and a value of no list
raises instead of being skipped: metric labels, payment event types, movement reasons, problem
codes. And an error, once built, is never changed."""

import asyncio
from typing import Any, get_args

import pytest

from app import ledger, orders, payments
from app.core import metrics
from app.core.errors import ApiError
from app.core.problem_codes import PROBLEM_CODES
from app.schemas import PaymentEventType
from app.tables import OrderStatus


def test_status_change_labels_are_the_statuses_an_order_can_move_to():
    movable = {status for moves in orders.TRANSITIONS.values() for status in moves}
    assert set(metrics._status_changes) == {str(status) for status in movable}
    assert OrderStatus.PENDING not in movable


def test_a_status_of_no_list_is_an_error_not_a_skipped_count():
    with pytest.raises(ValueError, match="PENDING"):
        metrics.order_status_changed(OrderStatus.PENDING.value)
    with pytest.raises(ValueError):
        metrics.order_status_changed("LOST")


def test_each_payment_event_type_moves_an_order_to_one_status():
    assert set(payments.TARGETS) | {payments.REFUNDED} == set(get_args(PaymentEventType))


def test_a_movement_of_no_reason_is_refused_before_anything_is_written():
    class NoConnection:
        async def fetch_value(self, *args: Any, **kwargs: Any) -> Any:
            raise AssertionError("nothing may be written")

    with pytest.raises(ValueError, match="misplaced"):
        asyncio.run(
            ledger.record_movement(
                NoConnection(),
                1,
                "misplaced",
                on_hand_delta=-1,
                after={"on_hand": 0, "committed": 0},
            )  # type: ignore[arg-type]
        )


def test_an_error_takes_its_status_and_title_from_its_code():
    error = ApiError("product_not_found", "Product 7 does not exist.", product_id=7)
    listed = {
        entry.code: (status, entry.title)
        for status, codes in PROBLEM_CODES.items()
        for entry in codes
    }
    assert (error.status, error.title) == listed["product_not_found"]
    with pytest.raises(ValueError, match="no_such_code"):
        ApiError("no_such_code")


def test_an_error_is_not_changed_once_built():
    error = orders.invalid_transition(OrderStatus.SHIPPED, OrderStatus.PENDING)
    with pytest.raises(AttributeError):
        error.detail = "something else"  # type: ignore[misc]
    with pytest.raises(TypeError):
        error.extra["allowed"] = ["PAID"]  # type: ignore[index]
    with pytest.raises(TypeError):
        error.headers["Retry-After"] = "1"  # type: ignore[index]
    assert error.detail == "An order in SHIPPED cannot move to PENDING."


def test_a_closed_payment_window_is_its_own_error_not_a_changed_one():
    from datetime import UTC, datetime

    closed = orders.window_closed({"id": 3, "expires_at": datetime(2026, 1, 1, tzinfo=UTC)})
    plain = orders.invalid_transition(OrderStatus.PENDING, OrderStatus.PAID)
    assert closed.extra["allowed"] == ["CANCELED"]
    assert plain.extra["allowed"] == ["PAID", "CANCELED"]
    assert "payment window closed" in (closed.detail or "")


def test_every_path_treated_apart_is_one_the_service_serves():
    from app.core.config import Settings
    from app.http import path_rules
    from app.main import create_app

    app = create_app(Settings(_env_file=None, app_env="test", database_url="sqlite://"))
    served = {getattr(route, "path", None) for route in app.router.routes}
    assert set(path_rules.PATHS) <= served, set(path_rules.PATHS) - served
    for prefix in path_rules.PREFIXES:
        assert any(str(path).startswith(prefix) for path in served), prefix
    assert path_rules.keyless("/docs/oauth2-redirect") and not path_rules.keyless("/docsx")
    assert path_rules.unqueued("/readyz") and not path_rules.unqueued("/orders")
    assert path_rules.schema_free("/openapi.json") and not path_rules.schema_free("/products")
