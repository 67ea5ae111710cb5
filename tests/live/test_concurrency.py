"""Stock under real concurrency: a real multi-worker uvicorn, real threads, on each engine.
Each test ends with the ledger's audit (stock = the sum of each product's movements).

Stock must move both ways while orders wait: the races below that only take stock never made
an order wait for a row whose stock had gone *up* (a cancel's restock), the one change that
PostgreSQL's one-statement order once answered with a 500 (tests/unit/test_order_race.py has
it deterministically); the mixed load puts orders, cancels and payments on the same rows."""

from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from tests.support import mixed_load
from tests.support.databases import ENGINES, database_url
from tests.support.ledger import assert_ledger_holds
from tests.support.live_server import LiveServer
from tests.support.load import all_at_once, new_product, stock_of

pytestmark = pytest.mark.live
WORKERS = 4


@pytest.fixture(scope="module", params=ENGINES)
def server(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp(f"concurrency-{request.param}")
    with (
        database_url(request.param, tmp) as url,
        LiveServer(
            url,
            workers=WORKERS,
            env={"WEBHOOK_SECRET": mixed_load.SECRET},
            log_path=tmp / "server.log",
        ) as live,
    ):
        yield live


def test_sixty_concurrent_orders_against_stock_ten_sell_exactly_ten(server: LiveServer):
    product = new_product(server.base_url, stock=10)

    responses = all_at_once(
        60,
        lambda c, _: c.post("/orders", json={"product_id": product["id"], "quantity": 1}),
        server.base_url,
    )

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 10, 409: 50}, (
        statuses,
        [r.text for r in responses if r.status_code >= 500],
    )
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"insufficient_stock"}
    assert stock_of(server.base_url, product["id"]) == 0
    assert_ledger_holds(server.database_url, "60 orders against stock 10")


def test_multi_line_orders_in_opposite_orders_neither_deadlock_nor_drift(server: LiveServer):
    products = [new_product(server.base_url, stock=15) for _ in range(3)]
    ids = [p["id"] for p in products]

    def order(client: httpx.Client, index: int) -> httpx.Response:
        lines = ids if index % 2 else list(reversed(ids))
        return client.post(
            "/orders",
            json={
                "items": [
                    {"product_id": pid, "quantity": 1 + (index + n) % 2}
                    for n, pid in enumerate(lines)
                ]
            },
        )

    responses = all_at_once(20, order, server.base_url)

    assert all(r.status_code in (201, 409) for r in responses), Counter(
        r.status_code for r in responses
    )
    taken = Counter()
    for response in responses:
        if response.status_code == 201:
            for item in response.json()["items"]:
                taken[item["product_id"]] += item["quantity"]
    for pid in ids:
        assert stock_of(server.base_url, pid) == 15 - taken[pid] >= 0
    assert_ledger_holds(server.database_url, "multi-line orders in opposite orders")


def test_concurrent_cancels_restock_exactly_once(server: LiveServer):
    product = new_product(server.base_url, stock=10)
    order = httpx.post(
        f"{server.base_url}/orders", json={"product_id": product["id"], "quantity": 7}, timeout=30
    ).json()

    responses = all_at_once(10, lambda c, _: c.delete(f"/orders/{order['id']}"), server.base_url)

    assert [r.status_code for r in responses] == [200] * 10
    assert {r.json()["status"] for r in responses} == {"CANCELED"}
    assert stock_of(server.base_url, product["id"]) == 10
    assert_ledger_holds(server.database_url, "10 concurrent cancels")


def test_concurrent_requests_with_one_idempotency_key_place_one_order(server: LiveServer):
    product = new_product(server.base_url, stock=100)
    body = {"product_id": product["id"], "quantity": 3}

    responses = all_at_once(
        10,
        lambda c, _: c.post("/orders", json=body, headers={"Idempotency-Key": "same-key"}),
        server.base_url,
    )

    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}, statuses
    created = [r for r in responses if r.status_code == 201]
    assert len({r.json()["id"] for r in created}) == 1
    assert sum("idempotent-replayed" not in r.headers for r in created) == 1
    assert {r.json()["code"] for r in responses if r.status_code == 409} <= {
        "idempotency_key_in_use"
    }
    assert stock_of(server.base_url, product["id"]) == 97
    orders = httpx.get(
        f"{server.base_url}/orders", params={"product_id": product["id"]}, timeout=30
    ).json()
    assert orders["total"] == 1
    assert_ledger_holds(server.database_url, "10 requests with one Idempotency-Key")


# The statuses each action of the mixed load may get: anything else (a 5xx above all) fails.
MIXED_ANSWERS = {"place": {201, 409}, "cancel": {200, 409}, "pay": {200, 409}, "read": {200}}


def test_a_mixed_load_of_orders_cancels_and_payments_answers_no_5xx(server: LiveServer):
    """32 threads for 8 s on 20 products of stock 40: multi-line orders, cancels, signed
    payments and reads, as a busy shop sends them."""
    tally = mixed_load.run(server.base_url, threads=32, seconds=8)

    assert tally.errors_5xx() == 0, (tally.by_action(), tally.server_errors[:5])
    seen = tally.by_action()
    assert {a: set(s) - MIXED_ANSWERS[a] for a, s in seen.items()} == {a: set() for a in seen}
    assert seen["place"].get(201, 0) > 0 and seen["cancel"].get(200, 0) > 0, seen
    assert_ledger_holds(server.database_url, "a mixed load")
