"""Figures of outbound events, per engine, on real servers at 4 workers (all traffic to
127.0.0.1, every loop bounded):

1. events recorded vs changes committed under a concurrent load (must be equal);
2. push deliveries to a receiver that fails every third request (all delivered; repeats of a
   webhook-id the receiver had already accepted counted as duplicates);
3. delivery latency from commit (the API's answer) to receipt, p50 and p99;
4. the feed walked with `next` during the load (nothing missed), with how many events
   committed out of seq order (the interleavings a plain sequence cursor would skip);
5. a healthy receiver's latency, commit to receipt, with 0 and with 3 subscribers beside it
   whose receivers accept the connection and never answer (the default 10 s delivery timeout
   and 10 s retry base: a silent delivery holds its slot 10 s, then comes back).

    .venv/bin/python -m bench.event_figures [sqlite|postgresql ...] [--silent-only]
"""

import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from tests.support.databases import database_url
from tests.support.event_receiver import (
    Answer,
    Received,
    Receiver,
    SilentReceiver,
    subscribe,
)
from tests.support.live_server import LiveServer
from tests.support.load import shop, walk_while

ENV = {"EVENT_ALLOW_PRIVATE_URLS": "true", "EVENT_RETRY_BASE_SECONDS": "0.2"}
SHOPPERS, ROUNDS, LATENCY_ORDERS = 6, 40, 200
# Section 5: the delivery settings at their defaults; orders 0.1 s apart; how long to wait.
SILENT_ENV = {"EVENT_ALLOW_PRIVATE_URLS": "true"}
SILENT_ORDERS, SILENT_WAIT_SECONDS = 40, 150


def every_third_fails() -> Receiver:
    count = Counter[str]()
    lock = threading.Lock()

    def answer(received: Received) -> Answer:
        with lock:
            count["n"] += 1
            return Answer(500) if count["n"] % 3 == 0 else Answer(200)

    return Receiver(answer)


def seq_inversions(url: str, ids: list[str]) -> int:
    """Events that sort after one with a larger seq: each committed out of seq order."""
    engine = create_engine(url, hide_parameters=True)
    with engine.connect() as connection:
        seqs = dict(connection.execute(text("SELECT id, seq FROM events")).all())
    engine.dispose()
    highest, inversions = 0, 0
    for event_id in ids:
        inversions += seqs[event_id] < highest
        highest = max(highest, seqs[event_id])
    return inversions


def load_and_deliveries(server: LiveServer, url: str) -> None:
    receiver = every_third_fails()
    with receiver.running(), httpx.Client(base_url=server.base_url, timeout=30) as api:
        subscribe(api, receiver, "/flaky", ["*"])
        products = [
            api.post(
                "/products", json={"sku": f"FIG-{n}", "name": "Mug", "price": "3.00", "stock": 400}
            ).json()["id"]
            for n in range(3)
        ]
        expected: dict[str, int] = {}
        with ThreadPoolExecutor(SHOPPERS + 1) as pool:
            walker = pool.submit(walk_while, api, expected)
            shoppers = [pool.submit(shop, api, products, ROUNDS, n) for n in range(SHOPPERS)]
            made = sum((shopper.result() for shopper in shoppers), Counter[str]())
            expected["n"] = sum(made.values())
            walked = walker.result()
        final = walk_while(api, expected)
        recorded = Counter(e["type"] for e in final)
        print(
            f"  changes committed {sum(made.values())}, events recorded {len(final)}: "
            f"{'equal' if recorded == made else 'DIFFERENT'} {dict(recorded)}"
        )
        missed = {e["id"] for e in final} - {e["id"] for e in walked}
        repeated = len(walked) - len({e["id"] for e in walked})
        in_order = [e["id"] for e in walked] == [e["id"] for e in final]
        inversions = seq_inversions(url, [e["id"] for e in final])
        print(
            f"  feed walk during the load: {len(walked)} seen, {len(missed)} missed, "
            f"{repeated} repeated, same order as the final feed: {in_order}; "
            f"{inversions} events committed out of seq order"
        )
        wanted = {e["id"] for e in final}
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            accepted = {r.webhook_id for r in receiver.at("/flaky") if 200 <= r.answered < 300}
            if wanted <= accepted:
                break
            time.sleep(0.2)
        time.sleep(2)  # a duplicate send would land by now
        got = receiver.at("/flaky")
        accepted = {r.webhook_id for r in got if 200 <= r.answered < 300}
        delivered = {e["id"] for e in final} <= accepted
        duplicates = receiver.duplicates_at("/flaky")
        print(
            f"  receiver failing 1 in 3: {len(final)} events, {len(got)} requests, all "
            f"delivered: {delivered}, all verified: {all(r.verified for r in got)}, "
            f"duplicates of an accepted delivery: {duplicates}"
        )


def latency(server: LiveServer) -> None:
    receiver = Receiver()
    with receiver.running(), httpx.Client(base_url=server.base_url, timeout=30) as api:
        subscribe(api, receiver, "/latency", ["order.created"])
        mug = api.post(
            "/products", json={"sku": "LAT-1", "name": "Mug", "price": "1.00", "stock": 100000}
        ).json()["id"]
        committed: dict[int, float] = {}
        for _ in range(LATENCY_ORDERS):
            order = api.post("/orders", json={"product_id": mug, "quantity": 1}).json()
            committed[order["id"]] = time.time()
            time.sleep(0.02)
        receiver.wait_for(lambda: len(receiver.at("/latency")) >= LATENCY_ORDERS, timeout=60)
    delays = sorted(
        (r.at - committed[r.event["data"]["order"]["id"]]) * 1000
        for r in receiver.at("/latency")
        if r.event and r.nth == 1
    )

    def quantile(q: float) -> float:
        return delays[min(len(delays) - 1, int(len(delays) * q))]

    slow = sum(1 for delay in delays if delay > 500)
    print(
        f"  delivery latency, commit to receipt, {len(delays)} events: "
        f"p50 {statistics.median(delays):.1f} ms, p90 {quantile(0.9):.1f} ms, "
        f"p99 {quantile(0.99):.1f} ms, max {delays[-1]:.1f} ms; {slow} over 500 ms"
    )


def beside_silent(server: LiveServer, silent_count: int) -> None:
    receiver = Receiver()
    with ExitStack() as stack:
        stack.enter_context(receiver.running())
        api = stack.enter_context(httpx.Client(base_url=server.base_url, timeout=30))
        # Entered last, so left first: the held connections close before the server stops.
        for n in range(silent_count):
            subscribe(api, stack.enter_context(SilentReceiver().running()), f"/s{n}", ["*"])
        subscribe(api, receiver, "/healthy", ["order.created"])
        mug = api.post(
            "/products", json={"sku": "SIL-1", "name": "Mug", "price": "1.00", "stock": 100000}
        ).json()["id"]
        committed: dict[int, float] = {}
        for _ in range(SILENT_ORDERS):
            order = api.post("/orders", json={"product_id": mug, "quantity": 1}).json()
            committed[order["id"]] = time.time()
            time.sleep(0.1)
        receiver.wait_for(
            lambda: len(receiver.ids_at("/healthy")) >= SILENT_ORDERS, timeout=SILENT_WAIT_SECONDS
        )
    firsts = [r for r in receiver.at("/healthy") if r.event and r.nth == 1]
    delays = sorted((r.at - committed[r.event["data"]["order"]["id"]]) for r in firsts)
    if not delays:
        print(f"  beside {silent_count} silent: 0 of {SILENT_ORDERS} received")
        return
    p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
    within_8 = sum(1 for delay in delays if delay <= 8)
    print(
        f"  healthy receiver beside {silent_count} silent subscribers: {len(delays)} of "
        f"{SILENT_ORDERS} received within {SILENT_WAIT_SECONDS} s ({within_8} within 8 s); "
        f"commit to receipt p50 {statistics.median(delays) * 1000:.0f} ms, "
        f"p99 {p99 * 1000:.0f} ms, max {delays[-1] * 1000:.0f} ms"
    )


def main(engines: list[str], silent_only: bool = False) -> None:
    for engine in engines:
        print(f"== {engine}, 4 workers")
        with tempfile.TemporaryDirectory() as tmp:
            for silent_count in (0, 3):
                with database_url(engine, Path(tmp)) as url:
                    with LiveServer(url, workers=4, env=SILENT_ENV) as server:
                        beside_silent(server, silent_count)
        if silent_only:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            with database_url(engine, Path(tmp)) as url:
                with LiveServer(url, workers=4, env=ENV) as server:
                    load_and_deliveries(server, url)
            with database_url(engine, Path(tmp)) as url:
                with LiveServer(url, workers=4, env=ENV) as server:
                    latency(server)


if __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(arguments or ["sqlite", "postgresql"], silent_only="--silent-only" in sys.argv)
