"""Stock under real concurrency: a real multi-worker uvicorn, real threads, on each engine.
Each test ends with the ledger's audit of both quantities (on_hand and committed = the sums of
each product's movements, committed = the units its orders hold) and, through the API,
available = on_hand - committed on every product.

Stock must move both ways while orders wait: the races below that only take stock never made
an order wait for a row whose stock had gone *up* (a cancel's restock), the one change that
PostgreSQL's one-statement order once answered with a 500 (tests/unit/test_order_race.py has
it deterministically); the mixed load puts orders, cancels, payments, shipments and counts on
the same rows. Concurrent shipments of one order never ship a unit twice."""

from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from bench.stock_check import check_stock
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
    assert_ledger_holds(server.database_url, "60 orders against stock 10", server.base_url)


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
    assert_ledger_holds(
        server.database_url, "multi-line orders in opposite orders", server.base_url
    )


def test_concurrent_cancels_restock_exactly_once(server: LiveServer):
    product = new_product(server.base_url, stock=10)
    order = httpx.post(
        f"{server.base_url}/orders", json={"product_id": product["id"], "quantity": 7}, timeout=30
    ).json()

    responses = all_at_once(10, lambda c, _: c.delete(f"/orders/{order['id']}"), server.base_url)

    assert [r.status_code for r in responses] == [200] * 10
    assert {r.json()["status"] for r in responses} == {"CANCELED"}
    assert stock_of(server.base_url, product["id"]) == 10
    assert_ledger_holds(server.database_url, "10 concurrent cancels", server.base_url)


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
    assert_ledger_holds(
        server.database_url, "10 requests with one Idempotency-Key", server.base_url
    )


def _paid_order(base_url: str, items: list[dict]) -> dict:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        placed = client.post("/orders", json={"items": items})
        assert placed.status_code == 201, placed.text
        paid = client.patch(f"/orders/{placed.json()['id']}", json={"status": "PAID"})
        assert paid.status_code == 200, paid.text
        return paid.json()


# A shipment that lost the race: what it may answer instead of 201 (never a 5xx).
LOST_SHIPMENT = {
    (409, "exceeds_remaining"),  # the units it named were shipped meanwhile
    (409, "invalid_status_transition"),  # the order was SHIPPED meanwhile
    (422, "validation_error"),  # nothing left to ship
}


def test_concurrent_shipments_of_one_order_never_ship_a_unit_twice(server: LiveServer):
    """40 shipments at once of one paid order of 2 lines (6 + 4 units): most of one unit of a
    line, every fifth of everything that remains. Exactly the order's 10 units leave."""
    products = [new_product(server.base_url, stock=50) for _ in range(2)]
    quantities = {products[0]["id"]: 6, products[1]["id"]: 4}
    order = _paid_order(
        server.base_url, [{"product_id": pid, "quantity": q} for pid, q in quantities.items()]
    )
    ids = list(quantities)

    def ship(client: httpx.Client, index: int) -> httpx.Response:
        body: dict = {"tracking_number": f"T{index}"}
        if index % 5:
            body["items"] = [{"product_id": ids[index % 2], "quantity": 1}]
        return client.post(f"/orders/{order['id']}/shipments", json=body)

    responses = all_at_once(40, ship, server.base_url)

    shipped = [r.json() for r in responses if r.status_code == 201]
    lost = Counter((r.status_code, r.json().get("code")) for r in responses if r.status_code != 201)
    assert set(lost) <= LOST_SHIPMENT, (lost, [r.text for r in responses if r.status_code >= 500])
    units = Counter()
    for shipment in shipped:
        for item in shipment["items"]:
            units[item["product_id"]] += item["quantity"]
    assert units == quantities, (units, lost)
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        final = client.get(f"/orders/{order['id']}").json()
        listed = client.get(f"/orders/{order['id']}/shipments", params={"limit": 100}).json()
        shown = {pid: client.get(f"/products/{pid}").json() for pid in ids}
    assert final["status"] == "SHIPPED"
    assert {i["product_id"]: i["quantity_shipped"] for i in final["items"]} == quantities
    assert listed["total"] == len(shipped)
    for pid, quantity in quantities.items():
        assert (shown[pid]["on_hand"], shown[pid]["committed"]) == (50 - quantity, 0)
    print(f"40 shipments of one order: {len(shipped)} shipped {dict(units)}, lost {dict(lost)}")
    assert_ledger_holds(server.database_url, "40 shipments of one order", server.base_url)


def test_whole_order_shipments_and_status_moves_racing_ship_it_once(server: LiveServer):
    """20 at once on one paid order: shipments of everything and PATCH status SHIPPED (a
    shipment of everything that remains, for earlier clients): one ships, the rest lose."""
    product = new_product(server.base_url, stock=30)
    order = _paid_order(server.base_url, [{"product_id": product["id"], "quantity": 7}])

    def ship(client: httpx.Client, index: int) -> httpx.Response:
        if index % 2:
            return client.patch(f"/orders/{order['id']}", json={"status": "SHIPPED"})
        return client.post(f"/orders/{order['id']}/shipments", json={})

    responses = all_at_once(20, ship, server.base_url)

    statuses = Counter(r.status_code for r in responses)
    assert statuses[201] + statuses[200] >= 1 and set(statuses) <= {200, 201, 409, 422}, statuses
    assert statuses[201] <= 1, statuses
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        listed = client.get(f"/orders/{order['id']}/shipments").json()
        shown = client.get(f"/products/{product['id']}").json()
    assert listed["total"] == 1 and listed["items"][0]["items"][0]["quantity"] == 7, listed
    assert (shown["on_hand"], shown["committed"]) == (23, 0)
    assert_ledger_holds(server.database_url, "whole-order shipments racing", server.base_url)


# The answers each action of the mixed load may get: anything else (a 5xx above all) fails;
# and the problem codes of its 4xx answers.
MIXED_ANSWERS = {
    "place": {201, 409},
    "cancel": {200, 409},
    "pay": {200, 409},
    "ship": {201, 409},
    "count": {201, 409},
    "read": {200},
}
MIXED_CODES = {
    "place": {"insufficient_stock"},
    "cancel": {"invalid_status_transition"},
    "pay": {"invalid_status_transition"},
    "ship": {"invalid_status_transition", "exceeds_remaining", "insufficient_on_hand"},
    "count": {"count_too_old"},
}


def test_a_mixed_load_of_orders_cancels_payments_shipments_and_counts_answers_no_5xx(
    server: LiveServer,
):
    """32 threads for 8 s on 20 products of stock 40: multi-line orders, cancels, signed
    payments, shipments (whole or one unit), stock counts and reads, as a busy shop sends
    them; then both quantities of every product follow from its opening on_hand, the counts'
    corrections, the units shipped and what its orders hold (bench/stock_check.py, over HTTP),
    and from its ledger."""
    tally = mixed_load.run(server.base_url, threads=32, seconds=8)

    assert tally.errors_5xx() == 0, (tally.by_action(), tally.server_errors[:5])
    seen = tally.by_action()
    assert {a: set(s) - MIXED_ANSWERS[a] for a, s in seen.items()} == {a: set() for a in seen}
    assert {a: tally.codes_of(a) - MIXED_CODES[a] for a in MIXED_CODES} == {
        a: set() for a in MIXED_CODES
    }, tally.codes
    for action, ok in (("place", 201), ("cancel", 200), ("ship", 201), ("count", 201)):
        assert seen[action].get(ok, 0) > 0, seen
    figures: Counter = Counter()
    assert check_stock(server.base_url, tally.products, figures=figures) == []
    print(f"mixed load {seen}, 4xx codes {dict(tally.codes)}; over HTTP {dict(figures)}")
    assert_ledger_holds(server.database_url, "a mixed load", server.base_url)
