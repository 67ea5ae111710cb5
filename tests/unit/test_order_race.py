"""The one-statement order on PostgreSQL against a stock change it has to wait for: under
READ COMMITTED it must decide whether each line is served on the same row version it takes
stock from, so a change committed while it waits gives a 201 or `insufficient_stock`, never
the stock CHECK's error."""

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Connection as SaConnection
from sqlalchemy import Engine, text

from app.core.errors import ApiError
from tests.support.factories import Db, make_order, make_product, stock_of

pytestmark = pytest.mark.parametrize("db_kind", ["postgresql"])
WAIT_SECONDS = 10


@contextmanager
def row_held(engine: Engine, product_id: int) -> Iterator[SaConnection]:
    """A transaction of another client that has updated the product (its row lock held)."""
    with engine.connect() as other:
        other.execute(text("BEGIN"))
        other.execute(
            text("UPDATE products SET updated_at = now() WHERE id = :id"), {"id": product_id}
        )
        yield other


def waiting_for_a_lock(engine: Engine) -> bool:
    with engine.connect() as watcher:
        return bool(
            watcher.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()"
                )
            ).scalar()
        )


def while_blocked(engine: Engine, place: Callable[[], Any], then: Callable[[], None]) -> Any:
    """Start `place` in a thread, wait until it waits for a row lock, run `then` (which ends
    the lock's transaction), and return what `place` returned or raised."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = place()
        except BaseException as error:  # handed back to the test
            outcome["error"] = error

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + WAIT_SECONDS
    while not waiting_for_a_lock(engine):
        assert time.monotonic() < deadline and worker.is_alive(), outcome
        time.sleep(0.01)
    then()
    worker.join(WAIT_SECONDS)
    assert not worker.is_alive()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def test_stock_taken_while_an_order_waits_is_insufficient_stock_not_an_error(
    db: Db, engine: Engine
):
    if db.dialect != "postgresql":
        pytest.skip("PostgreSQL's one-statement order")
    product = make_product(db, stock=40)

    with row_held(engine, product.id) as other:

        def commit_a_smaller_stock() -> None:
            other.execute(
                text("UPDATE products SET on_hand = 2 WHERE id = :id"), {"id": product.id}
            )
            other.execute(text("COMMIT"))

        with pytest.raises(ApiError) as raised:
            while_blocked(engine, lambda: make_order(db, (product, 5)), commit_a_smaller_stock)

    assert raised.value.code == "insufficient_stock"
    assert raised.value.extra == {"product_id": product.id, "requested": 5, "available": 2}
    assert stock_of(db, product.id) == 2


def test_stock_returned_while_an_order_waits_is_served(db: Db, engine: Engine):
    if db.dialect != "postgresql":
        pytest.skip("PostgreSQL's one-statement order")
    product = make_product(db, stock=1)

    with row_held(engine, product.id) as other:

        def commit_a_larger_stock() -> None:
            other.execute(
                text("UPDATE products SET on_hand = 9 WHERE id = :id"), {"id": product.id}
            )
            other.execute(text("COMMIT"))

        order = while_blocked(engine, lambda: make_order(db, (product, 5)), commit_a_larger_stock)

    assert order.status == "PENDING"
    assert stock_of(db, product.id) == 4
