"""Idempotency keys through the seam: retries replay, different bodies are refused, failures
leave the key free, keys expire, keys are scoped by key space and API key, and a key held by a
running request is 409."""

import asyncio
from datetime import timedelta

import pytest

from app import idempotency, orders
from app.core.errors import ApiError
from app.db.connect import create_database
from app.schemas import OrderCreate
from tests.support.factories import Db, make_product, orders_in_db, stock_of

DAY = timedelta(hours=24)


def request_for(product, quantity: int = 1) -> OrderCreate:
    return OrderCreate.model_validate({"product_id": product["id"], "quantity": quantity})


def place_once(
    db: Db, key: str, request: OrderCreate, *, principal: str | None = None, space="orders"
) -> idempotency.Answer:
    async def unit(conn):
        async def create(conn):
            return 201, await orders.place_order(conn, request)

        return await idempotency.once(
            conn,
            space=space,
            principal=principal,
            key=key,
            request=request.model_dump(mode="json"),
            create=create,
            ttl=DAY,
        )

    return db.write(unit)


def test_same_key_and_body_replays_the_first_answer(db: Db):
    mug = make_product(db, stock=5)

    first = place_once(db, "k-1", request_for(mug, 2))
    again = place_once(db, "k-1", request_for(mug, 2))

    assert (first.replayed, again.replayed) == (False, True)
    assert again.status_code == 201 and again.body == first.body
    assert orders_in_db(db) == 1
    assert stock_of(db, mug.id) == 3


def test_same_key_with_another_body_is_refused(db: Db):
    mug = make_product(db, stock=5)
    place_once(db, "k-1", request_for(mug, 1))

    with pytest.raises(ApiError) as raised:
        place_once(db, "k-1", request_for(mug, 2))

    assert (raised.value.status, raised.value.code) == (422, "idempotency_key_reused")
    assert orders_in_db(db) == 1


def test_a_failed_request_leaves_its_key_free(db: Db):
    mug = make_product(db, stock=1)

    with pytest.raises(ApiError):
        place_once(db, "k-1", request_for(mug, 2))
    assert db.value("SELECT count(*) FROM idempotency_keys") == 0

    answer = place_once(db, "k-1", request_for(mug, 1))
    assert answer.status_code == 201 and not answer.replayed


def test_keys_are_scoped_by_principal_and_key_space(db: Db):
    mug = make_product(db, stock=10)

    alice = place_once(db, "k-1", request_for(mug), principal="key-alice")
    bob = place_once(db, "k-1", request_for(mug), principal="key-bob")
    other_space = place_once(db, "k-1", request_for(mug), principal="key-alice", space="other")
    alice_again = place_once(db, "k-1", request_for(mug), principal="key-alice")

    assert not bob.replayed and bob.body["id"] != alice.body["id"]
    assert not other_space.replayed
    assert alice_again.replayed and alice_again.body == alice.body
    assert orders_in_db(db) == 3


def test_expired_keys_are_forgotten(db: Db):
    mug = make_product(db, stock=5)
    place_once(db, "old", request_for(mug))
    db.execute("UPDATE idempotency_keys SET created_at = :at", at=idempotency.utcnow() - 2 * DAY)

    fresh = place_once(db, "old", request_for(mug, 2))
    assert not fresh.replayed and orders_in_db(db) == 2

    db.execute("UPDATE idempotency_keys SET created_at = :at", at=idempotency.utcnow() - 2 * DAY)
    assert db.write(idempotency.purge_expired, DAY) == 1
    assert db.value("SELECT count(*) FROM idempotency_keys") == 0


def test_a_key_held_by_a_running_request_is_in_use(db: Db, settings):
    """PostgreSQL: the second request is 409 at once. SQLite runs one writer at a time, and a
    unit may not wait on anything but the database inside its transaction, so the holder that
    waits is refused itself (and leaves nothing behind)."""
    mug = make_product(db, stock=5)
    other = create_database(settings)
    holding, release = asyncio.Event(), asyncio.Event()

    async def hold(conn):
        async def create(conn):
            holding.set()
            await release.wait()
            return 201, await orders.place_order(conn, request_for(mug))

        return await idempotency.once(
            conn,
            space="orders",
            principal=None,
            key="busy",
            request=request_for(mug).model_dump(mode="json"),
            create=create,
            ttl=DAY,
        )

    async def race():
        first = asyncio.ensure_future(other.write(hold))
        await holding.wait()
        try:
            with pytest.raises(ApiError) as raised:
                await db.database.write(lambda conn: hold(conn))
        finally:
            release.set()
        answer = await first
        await other.close()
        return raised.value, answer

    if db.dialect == "sqlite":
        with pytest.raises(RuntimeError, match="awaited something other than the database"):
            db.run(other.write(hold))
        db.run(other.close())
        assert db.value("SELECT count(*) FROM idempotency_keys") == 0 and orders_in_db(db) == 0
        return
    refused, answer = db.run(race())

    assert (refused.status, refused.code) == (409, "idempotency_key_in_use")
    assert answer.status_code == 201 and orders_in_db(db) == 1
