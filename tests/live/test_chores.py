"""`./run.sh chores` beside a running 2-worker server, on each engine: the unpaid orders past
their window are canceled, each exactly once, and their stock comes back once, however many
chore runs and workers go at them together."""

import json
import os
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx
import pytest

from tests.live.test_event_delivery import FAST, place, product
from tests.live.test_ledger_live import _pending, _returns_of
from tests.support.event_receiver import Answer, Receiver, subscribe
from tests.support.ledger import assert_ledger_holds
from tests.support.live_server import ROOT
from tests.support.load import all_at_once, new_product, stock_of

pytestmark = pytest.mark.live
RUNS = 3


def chores(database_url: str, **settings: str) -> tuple[int, dict]:
    """One `./run.sh chores`: its exit status and its closing JSON line."""
    env = {**os.environ, "DATABASE_URL": database_url, "APP_ENV": "test", **settings}
    result = subprocess.run(
        ["bash", str(ROOT / "run.sh"), "chores"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    (summary,) = [line for line in lines if line["logger"] == "app.chores"] or [{}]
    return result.returncode, summary


# "asleep": the workers serve but their own expiry waits an hour, as on a sleeping instance's
# wake-up, so the chore runs do it all; "racing": the workers expire every 0.1 s as well.
@pytest.mark.parametrize("workers_expire_every", ["3600", "0.1"], ids=["asleep", "racing"])
def test_chores_beside_running_workers_cancel_each_expired_order_once(
    live_server, workers_expire_every: str
):
    env = {"PENDING_ORDER_TTL_SECONDS": "1", "HOUSEKEEPING_INTERVAL_SECONDS": workers_expire_every}
    with live_server(workers=2, env=env) as server:
        base = server.base_url
        ids = [new_product(base, stock=100)["id"] for _ in range(2)]

        def place(client: httpx.Client, index: int) -> httpx.Response:
            items = [{"product_id": ids[index % 2], "quantity": 1 + index % 3}]
            return client.post("/orders", json={"items": items})

        placed = all_at_once(20, place, base)
        assert {r.status_code for r in placed} == {201}
        orders = {r.json()["id"] for r in placed}
        # Past every order's window: `expires_at` is shown to the second, the deadline within it.
        latest = max(datetime.fromisoformat(r.json()["expires_at"]) for r in placed)
        time.sleep(max(0.0, (latest - datetime.now(UTC)).total_seconds() + 1.0))

        with ThreadPoolExecutor(RUNS) as pool:
            runs = list(pool.map(lambda _: chores(server.database_url), range(RUNS)))

        assert [status for status, _ in runs] == [0] * RUNS, runs
        assert all(s["message"] == "chores done" and s["failed"] == [] for _, s in runs), runs
        by_chores = sum(s["orders_expired"] for _, s in runs)
        if workers_expire_every == "3600":
            assert by_chores == len(orders), runs  # every order by one run, none by two
        else:
            assert by_chores <= len(orders), runs
        assert _pending(base) == 0
        with httpx.Client(base_url=base, timeout=30) as client:
            returned = Counter()
            for pid in ids:
                for order_id, reasons in _returns_of(client, pid).items():
                    assert reasons == ["order_expired"], (order_id, reasons)
                    returned[order_id] += 1
            assert returned == dict.fromkeys(orders, 1)
            for order_id in orders:
                final = client.get(f"/orders/{order_id}").json()
                assert (final["status"], final["cancel_reason"]) == ("CANCELED", "expired")
        assert [stock_of(base, pid) for pid in ids] == [100, 100]
        figures = assert_ledger_holds(server.database_url, "chores beside 2 workers")
        assert figures["expired"] == len(orders)


def test_chores_send_the_retry_a_sleeping_service_left_due(live_server):
    """The first attempt fails (503) and the service stops before its retry is due, as a free
    instance falls asleep: the chores send the retry, once, under the same webhook-id."""
    receiver = Receiver(lambda got: Answer(503 if got.nth == 1 else 200))
    env = {**FAST, "EVENT_RETRY_BASE_SECONDS": "3"}  # the retry is due 2.25-3 s after
    with receiver.running():
        with live_server(workers=1, env=env) as server:
            with httpx.Client(base_url=server.base_url, timeout=30) as api:
                subscribe(api, receiver, "/sleepy", ["order.created"])
                place(api, product(api))
            assert receiver.wait_for(lambda: len(receiver.at("/sleepy")) == 1)
            first = time.monotonic()
            server.stop()
            assert len(receiver.at("/sleepy")) == 1, "the service sent the retry itself"
            time.sleep(max(0.0, first + 3.2 - time.monotonic()))

            status, summary = chores(server.database_url, **env)
            assert (status, summary["deliveries_attempted"]) == (0, 1), summary
            again = chores(server.database_url, **env)
            assert again[1]["deliveries_attempted"] == 0, again  # delivered: not sent twice

    got = receiver.at("/sleepy")
    assert [r.answered for r in got] == [503, 200]
    assert got[0].webhook_id == got[1].webhook_id and all(r.verified for r in got)
