"""The outbox and the pull feed: an event exists if and only if its change committed, and a
consumer paging with `next` sees every event once and in order, even when transactions
commit out of order."""

import asyncio
import itertools
import json
import sqlite3
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from app.core import cursors
from app.core.config import Settings
from app.core.errors import ApiError
from app.db.base import Connection, Database, Sql
from app.db.connect import create_database
from app.events import outbox
from app.main import create_app
from app.tables import EventType
from tests.support import webhooks
from tests.support.serving import serving

_skus = itertools.count(1)


def feed(client: TestClient, at_least: int = 0, **params: Any) -> dict[str, Any]:
    """A page of the feed; with `at_least`, once it shows that many items (30 s at most): on
    PostgreSQL a transaction open anywhere on the server holds new events back until it ends."""
    deadline = time.monotonic() + 30
    while True:
        response = client.get("/events", params=params)
        assert response.status_code == 200, response.text
        if len(response.json()["items"]) >= at_least or time.monotonic() > deadline:
            return response.json()
        time.sleep(0.05)


def walk(client: TestClient, after: str | None = None, **params: Any) -> tuple[list, str]:
    """Every event after `after`, page by page; and where to poll from next."""
    seen: list[dict[str, Any]] = []
    while True:
        page = feed(client, limit=2, **params, **({"after": after} if after else {}))
        assert page["next"] is not None
        seen += page["items"]
        after = page["next"]
        if len(page["items"]) < 2:
            return seen, after


def product(client: TestClient, stock: int = 10) -> int:
    body = {"sku": f"FEED-{next(_skus)}", "name": "Mug"}
    response = client.post("/products", json={**body, "price": "5.00", "stock": stock})
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.mark.parametrize("window_seconds", [None, 900])
def test_order_created_carries_the_orders_answer_key_for_key_in_its_order(
    settings: Settings, engine: Engine, window_seconds: int | None
):
    """On PostgreSQL the event's JSON is written by SQL in the statement that places the order
    (app/orders.py): it must be the answer's JSON, keys in the same order, odd names included."""
    settings = settings.model_copy(update={"pending_order_ttl_seconds": window_seconds})
    with serving(create_app(settings, engine)) as client:
        names = ['Mug "Classic" \\ 1/2', "Tasse à café ☕ 😀", "tab\there"]
        ids = []
        for name, price in zip(names, ["0.05", "12.30", "1234567.89"], strict=True):
            body = {"sku": f"FEED-{next(_skus)}", "name": name, "price": price, "stock": 50}
            created = client.post("/products", json=body)
            assert created.status_code == 201, created.text
            ids.append(created.json()["id"])
        items = [
            {"product_id": i, "quantity": q} for i, q in zip(ids[::-1], [3, 1, 7], strict=True)
        ]
        placed = client.post("/orders", json={"items": items})
        assert placed.status_code == 201, placed.text

        created_events = feed(client, at_least=1, type="order.created")["items"]
    assert [e["data"]["order"]["id"] for e in created_events] == [placed.json()["id"]]
    # json.loads keeps a document's key order, so equal dumps mean equal keys in equal order.
    assert json.dumps(created_events[0]["data"]) == json.dumps({"order": placed.json()})
    assert (placed.json()["expires_at"] is None) == (window_seconds is None)


def test_order_events_carry_the_order_as_it_was_right_after_each_change(client: TestClient):
    mug = product(client)
    order = client.post("/orders", json={"product_id": mug, "quantity": 2}).json()
    paid = client.put(f"/orders/{order['id']}", json={"status": "PAID"}).json()
    shipped = client.put(f"/orders/{order['id']}", json={"status": "SHIPPED"}).json()
    client.put(f"/orders/{order['id']}", json={"status": "SHIPPED"})  # a no-op: no event

    page = feed(client, at_least=3)

    types = [e["type"] for e in page["items"] if e["type"].startswith("order.")]
    assert types == ["order.created", "order.paid", "order.shipped"]
    by_type = {e["type"]: e for e in page["items"]}
    assert by_type["order.created"]["data"]["order"] == order
    assert by_type["order.paid"]["data"]["order"] == paid
    assert by_type["order.shipped"]["data"]["order"] == shipped
    assert shipped == client.get(f"/orders/{order['id']}").json()
    for event in page["items"]:
        assert event["id"].startswith("evt_") and event["created_at"].endswith("Z")
    assert page["total"] is None and page["offset"] is None and page["limit"] == 20


def test_a_cancel_records_order_canceled_once(client: TestClient):
    mug = product(client)
    order = client.post("/orders", json={"product_id": mug, "quantity": 1}).json()
    canceled = client.delete(f"/orders/{order['id']}").json()
    client.delete(f"/orders/{order['id']}")  # already canceled: a no-op

    items = feed(client, at_least=1, type="order.canceled")["items"]

    assert [e["data"]["order"] for e in items] == [canceled]


def test_paging_with_next_sees_every_event_once_in_order_and_next_is_never_null(
    client: TestClient,
):
    mug = product(client, stock=100)
    for _ in range(5):
        client.post("/orders", json={"product_id": mug, "quantity": 1})
    feed(client, at_least=5)

    seen, cursor = walk(client)
    assert feed(client, after=cursor) == {
        "items": [], "total": None, "limit": 20, "offset": None, "next": cursor
    }  # fmt: skip
    client.post("/orders", json={"product_id": mug, "quantity": 1})
    feed(client, at_least=1, after=cursor)
    later, _ = walk(client, after=cursor)

    everything = feed(client, limit=100)["items"]
    assert [e["id"] for e in seen + later] == [e["id"] for e in everything]
    assert len({e["id"] for e in everything}) == len(everything)
    assert [e["type"] for e in later] == ["order.created"]


def test_type_filter_may_repeat(client: TestClient):
    mug = product(client)
    first = client.post("/orders", json={"product_id": mug, "quantity": 1}).json()
    client.put(f"/orders/{first['id']}", json={"status": "PAID"})
    second = client.post("/orders", json={"product_id": mug, "quantity": 1}).json()
    client.delete(f"/orders/{second['id']}")

    items = feed(client, at_least=2, type=["order.paid", "order.canceled"])["items"]
    paged, _ = walk(client, type=["order.paid", "order.canceled"])

    assert [e["type"] for e in items] == ["order.paid", "order.canceled"]
    assert paged == items
    assert [e["type"] for e in feed(client, type="order.created")["items"]] == ["order.created"] * 2


def test_a_type_filter_of_more_than_five_values_keeps_every_type_it_names(client: TestClient):
    """Six values, the sixth a type the first five do not name: its events are shown, and a
    consumer paging with `next` sees them (the filter once kept its first five values only,
    and `next` moved past the sixth's events)."""
    mug = product(client)
    order = client.post("/orders", json={"product_id": mug, "quantity": 1}).json()
    client.put(f"/orders/{order['id']}", json={"status": "PAID"})
    asked = ["order.created", "order.created", "order.shipped", "order.shipped", "order.created"]
    asked.append("order.paid")

    items = feed(client, at_least=2, type=asked)["items"]
    paged, _ = walk(client, type=asked)

    assert [e["type"] for e in items] == ["order.created", "order.paid"]
    assert paged == items


def test_a_type_filter_naming_every_type_many_times_shows_everything(client: TestClient):
    mug = product(client)
    order = client.post("/orders", json={"product_id": mug, "quantity": 1}).json()
    client.delete(f"/orders/{order['id']}")
    every = [str(kind) for kind in EventType] * 3

    assert feed(client, at_least=2, type=every)["items"] == feed(client, at_least=2)["items"]


@pytest.mark.parametrize(
    "after", ["", "A" * 201, outbox.encode_cursor(outbox.FEED, 0, 0) + "A" * 190]
)
def test_an_empty_or_overlong_feed_cursor_is_422_invalid_cursor(client: TestClient, after: str):
    """An empty `after=` once restarted the feed from its first event."""
    product(client)
    client.post("/orders", json={"product_id": product(client), "quantity": 1})

    response = client.get("/events", params={"after": after})

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "invalid_cursor"


@pytest.mark.parametrize(
    "params",
    [
        {"after": "not-a-cursor"},
        {"after": cursors.encode("orders", 5)},
        {"after": outbox.encode_cursor(outbox.FEED, -1, 2)},
        {"after": outbox.encode_cursor(outbox.FEED, 1)},
        {"type": "order.refunded"},
        {"limit": 0},
        {"limit": 101},
        {"typ": "order.paid"},
        {"offset": 5},
    ],
)
def test_bad_feed_queries_are_422(client: TestClient, params: dict):
    response = client.get("/events", params=params)

    assert response.status_code == 422
    assert response.json()["code"] in ("invalid_cursor", "validation_error")


def test_an_order_refused_for_stock_leaves_no_event(client: TestClient):
    mug = product(client, stock=1)
    refused = client.post("/orders", json={"product_id": mug, "quantity": 5})

    assert refused.status_code == 409
    assert [e for e in feed(client)["items"] if e["type"].startswith("order.")] == []


def test_a_refused_status_move_leaves_no_event(client: TestClient):
    mug = product(client)
    order = client.post("/orders", json={"product_id": mug, "quantity": 1}).json()
    client.put(f"/orders/{order['id']}", json={"status": "SHIPPED"})  # PENDING -> SHIPPED: 409

    assert [e["type"] for e in feed(client, type="order.shipped")["items"]] == []


async def _record_then_fail(conn: Connection) -> None:
    await outbox.record(conn, EventType.ORDER_PAID, {"order": {"id": 1}})
    raise ApiError.unlisted(409)


def test_a_rolled_back_unit_leaves_no_event_and_no_delivery(settings: Settings, engine: Engine):
    async def scenario() -> tuple[list, int]:
        database = create_database(settings, engine)
        try:
            with pytest.raises(ApiError):
                await database.write(_record_then_fail)
            items, _ = await database.read(outbox.feed, after=outbox.START, types=[], limit=10)
            count = await database.read(_count, "event_deliveries")
            return items, count
        finally:
            await database.close()

    items, deliveries = asyncio.run(scenario())

    assert items == [] and deliveries == 0


async def _count(conn: Connection, table: str) -> int:
    return await conn.fetch_value(Sql(f"SELECT count(*) FROM {table}"))


# ------------------------------------------------ transactions that commit out of order


async def _record(conn: Connection, name: str) -> None:
    await outbox.record(conn, EventType.ORDER_CREATED, {"order": {"name": name}})


_TAKE_TXID = Sql(
    sqlite="SELECT 0",
    postgresql="SELECT CAST(CAST(pg_current_xact_id() AS text) AS bigint)",
)
_SEQ_OF = Sql("SELECT seq FROM events WHERE data LIKE :pattern")


async def _names(
    database: Database, after: tuple[int, int], count: int = 0
) -> tuple[list[str], tuple]:
    """The names on the page after `after`; with `count`, wait (30 s at most) until that many
    show: on PostgreSQL, any transaction open on the server, even another database's, holds
    the feed back until it ends."""
    deadline = time.monotonic() + 30
    while True:
        items, position = await database.read(outbox.feed, after=after, types=[], limit=100)
        if len(items) >= count or time.monotonic() > deadline:
            return [item["data"]["order"]["name"] for item in items], position
        await asyncio.sleep(0.05)


async def _out_of_order_on_postgresql(database: Database) -> dict[str, Any]:
    """Two interleavings where a later-numbered event commits first; returns what each page
    showed and the seqs, for the assertions."""
    steps: dict[str, asyncio.Event] = {name: asyncio.Event() for name in ("a", "b", "c", "d")}
    seen: dict[str, Any] = {}

    # 1. A takes the lower seq and stays open while B (higher seq) commits.
    async def slow_a(conn: Connection) -> None:
        await _record(conn, "A")
        steps["a"].set()
        await steps["b"].wait()

    holding = asyncio.create_task(database.write(slow_a))
    await steps["a"].wait()
    await database.write(_record, "B")
    seen["page1"], cursor = await _names(database, outbox.START)
    steps["b"].set()
    await holding
    seen["page2"], cursor = await _names(database, cursor, 2)

    # 2. C's transaction starts (takes its id) first, D records and stays open, C then records
    # and commits: C has the smaller transaction id but the larger seq, and commits first.
    async def early_c(conn: Connection) -> None:
        await conn.fetch_value(_TAKE_TXID)
        steps["c"].set()
        await steps["d"].wait()
        await _record(conn, "C")

    async def late_d(conn: Connection) -> None:
        await _record(conn, "D")
        steps["d"].set()
        await gate.wait()

    gate = asyncio.Event()
    c_task = asyncio.create_task(database.write(early_c))
    await steps["c"].wait()
    d_task = asyncio.create_task(database.write(late_d))
    await c_task
    seen["page3"], cursor = await _names(database, cursor, 1)
    gate.set()
    await d_task
    seen["page4"], cursor = await _names(database, cursor, 1)
    seen["all"], _ = await _names(database, outbox.START, 4)
    for name in "ABCD":
        seen[name] = await database.read(
            lambda conn, n=name: conn.fetch_value(_SEQ_OF, {"pattern": f'%"{n}"%'})
        )
    return seen


def test_feed_never_skips_an_event_committed_out_of_seq_order(
    settings: Settings, engine: Engine, db_kind: str
):
    """PostgreSQL: transactions commit out of seq order on purpose. SQLite has one writer at a
    time, so the same feed query must only hide an event until its writer commits."""
    if db_kind == "sqlite":
        _held_writer_on_sqlite(settings, engine)
        return

    async def scenario() -> dict[str, Any]:
        database = create_database(settings, engine)
        try:
            return await _out_of_order_on_postgresql(database)
        finally:
            await database.close()

    seen = asyncio.run(scenario())

    # The transactions really committed out of seq order...
    assert seen["A"] < seen["B"] and seen["D"] < seen["C"]
    # ...yet a page never showed an event that a later commit could sort before.
    assert seen["page1"] == []  # B waits: A, still open, may commit below it
    assert seen["page2"] == ["A", "B"]
    assert seen["page3"] == ["C"]  # C's transaction is older than D's: it sorts first
    assert seen["page4"] == ["D"]
    walked = seen["page1"] + seen["page2"] + seen["page3"] + seen["page4"]
    assert walked == seen["all"] == ["A", "B", "C", "D"]


def _held_writer_on_sqlite(settings: Settings, engine: Engine) -> None:
    path = make_url(settings.database_url).database
    assert path

    async def scenario() -> dict[str, Any]:
        database = create_database(settings, engine)
        seen: dict[str, Any] = {}
        writer = sqlite3.connect(path, isolation_level=None)
        try:
            await database.write(_record, "A")
            seen["page1"], cursor = await _names(database, outbox.START)
            # Another process's writer holds the write lock with an event inserted.
            writer.execute("BEGIN IMMEDIATE")
            writer.execute(
                "INSERT INTO events (id, type, txid, created_at, data) VALUES "
                "('evt_held', 'order.created', 0, '2026-01-01 00:00:00.000000', "
                '\'{"order": {"name": "B"}}\')'
            )
            seen["page2"], cursor = await _names(database, cursor)
            writer.execute("COMMIT")
            await database.write(_record, "C")
            seen["page3"], cursor = await _names(database, cursor)
            seen["all"], _ = await _names(database, outbox.START)
            return seen
        finally:
            writer.close()
            await database.close()

    seen = asyncio.run(scenario())

    assert seen["page1"] == ["A"]
    assert seen["page2"] == []
    assert seen["page3"] == ["B", "C"]
    assert seen["all"] == ["A", "B", "C"]


# ------------------------------------------------ the payment webhook records the same events


@pytest.fixture
def webhook_client(settings: Settings, engine: Engine) -> TestClient:
    configured = settings.model_copy(update={"webhook_secret": SecretStr(webhooks.SECRET)})
    return TestClient(create_app(configured, engine))


def test_a_payment_webhook_records_order_paid_once_even_when_repeated(webhook_client: TestClient):
    client = webhook_client
    order = client.post("/orders", json={"product_id": product(client), "quantity": 2}).json()
    body = webhooks.event_body(order)

    first = webhooks.deliver(client, body, event_id="evt_pay_1")
    again = webhooks.deliver(client, body, event_id="evt_pay_1")

    assert first.status_code == again.status_code == 200 and again.json()["duplicate"] is True
    paid = feed(client, at_least=1, type="order.paid")["items"]
    assert [e["data"]["order"] for e in paid] == [client.get(f"/orders/{order['id']}").json()]


def test_a_payment_failure_records_order_canceled(webhook_client: TestClient):
    client = webhook_client
    order = client.post("/orders", json={"product_id": product(client), "quantity": 1}).json()

    failed = webhooks.deliver(client, webhooks.event_body(order, "payment.failed"))

    assert failed.status_code == 200
    (canceled,) = feed(client, at_least=1, type="order.canceled")["items"]
    assert canceled["data"]["order"]["status"] == "CANCELED"


def test_a_rejected_payment_records_nothing(webhook_client: TestClient):
    client = webhook_client
    order = client.post("/orders", json={"product_id": product(client), "quantity": 1}).json()

    wrong = webhooks.deliver(client, webhooks.event_body(order, amount="0.01"))

    assert wrong.status_code == 422 and wrong.json()["code"] == "amount_mismatch"
    assert feed(client, type=["order.paid", "order.canceled"])["items"] == []


def test_event_ids_are_unique_and_grow_with_time():
    """Time first, then randomness: ids keep their index append-only and never repeat."""
    import re
    import time

    from app.events.outbox import new_event_id

    first = [new_event_id() for _ in range(2000)]
    time.sleep(0.002)
    later = new_event_id()
    assert all(re.fullmatch(r"evt_[0-9a-f]{24}", event_id) for event_id in [*first, later])
    assert len(set(first)) == len(first)
    assert max(first) < later
