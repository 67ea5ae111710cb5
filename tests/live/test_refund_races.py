"""Refunds under a race, on a 4-worker server of each engine: one provider refund reported at
the same instant through both doors (the refunds call and the payment webhook) is recorded
once, and refunds racing each other never give back more than was paid."""

import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from app import signing
from tests.live.test_webhook import WEBHOOK, WebhookApi
from tests.support.databases import ENGINES, database_url
from tests.support.ledger import assert_ledger_holds
from tests.support.live_server import LiveServer

SECRET = "refund-race-webhook-secret"
RACERS = 16


@pytest.fixture(scope="module", params=ENGINES)
def server(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp(f"refund-race-{request.param}")
    with (
        database_url(request.param, tmp) as url,
        LiveServer(
            url, workers=4, env={"WEBHOOK_SECRET": SECRET}, log_path=tmp / "server.log"
        ) as live,
    ):
        yield live


def _paid_order(api: WebhookApi, quantity: int = 4) -> dict:
    order = api.create_order(price="5.00", quantity=quantity)
    body = json.dumps(
        {
            "type": "payment.succeeded",
            "order_id": order["id"],
            "amount": order["total"],
            "payment_id": f"pay_{uuid.uuid4().hex[:12]}",
        }
    ).encode()
    assert api.deliver(body).status_code == 200
    return order


def _at_once(calls: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], httpx.Response]) -> httpx.Response:
        barrier.wait(timeout=30)
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def _refunds(base_url: str, order_id: int, auth: dict) -> list[dict]:
    return httpx.get(f"{base_url}/orders/{order_id}/refunds", headers=auth, timeout=15).json()[
        "items"
    ]


@pytest.mark.live
def test_one_provider_refund_reported_through_both_doors_at_once_is_recorded_once(
    server: LiveServer,
):
    api = WebhookApi(server.base_url, [SECRET], os.environ.get("API_KEY"))
    order = _paid_order(api)
    product_id = order["items"][0]["product_id"]
    refund_id = f"re_race_{order['id']}"
    call_body = {
        "items": [{"product_id": product_id, "quantity": 1}],
        "provider_refund_id": refund_id,
    }
    hook_body = json.dumps(
        {
            "type": "payment.refunded",
            "order_id": order["id"],
            "amount": "5.00",
            "payment_id": "pay_x",
            "refund_id": refund_id,
        }
    ).encode()

    def by_call() -> httpx.Response:
        return httpx.post(
            f"{server.base_url}/orders/{order['id']}/refunds",
            json=call_body,
            headers=api.auth,
            timeout=60,
        )

    def by_webhook() -> httpx.Response:
        event_id = f"evt_{uuid.uuid4().hex}"
        headers = signing.signed_headers([SECRET], event_id, int(time.time()), hook_body)
        return httpx.post(
            server.base_url + WEBHOOK,
            content=hook_body,
            headers={"Content-Type": "application/json", **headers},
            timeout=60,
        )

    answers = _at_once([by_call if n % 2 else by_webhook for n in range(RACERS)])

    assert [a.status_code for a in answers if a.status_code >= 300 and a.status_code != 200] == []
    created = [a for a in answers if a.status_code == 201]
    fresh_hooks = [
        a for a in answers if a.request.url.path == WEBHOOK and a.json()["duplicate"] is False
    ]
    assert len(created) + len(fresh_hooks) == 1, [a.text for a in answers]
    refunds = _refunds(server.base_url, order["id"], api.auth)
    assert [r["provider_refund_id"] for r in refunds] == [refund_id]
    shown = httpx.get(f"{server.base_url}/orders/{order['id']}", headers=api.auth).json()
    assert shown["items"][0]["quantity_refunded"] in (0, 1)  # 1 if the call won, 0 the webhook
    assert_ledger_holds(server.database_url, "one provider refund, both doors at once")


@pytest.mark.live
def test_refunds_racing_each_other_never_give_back_more_than_was_paid(server: LiveServer):
    api = WebhookApi(server.base_url, [SECRET], os.environ.get("API_KEY"))
    order = _paid_order(api, quantity=4)  # 20.00 paid

    def refund_three() -> httpx.Response:
        return httpx.post(
            f"{server.base_url}/orders/{order['id']}/refunds",
            json={"amount": "3.00"},
            headers=api.auth,
            timeout=60,
        )

    answers = _at_once([refund_three] * RACERS)

    codes = sorted(a.status_code for a in answers)
    assert codes == [201] * 6 + [409] * (RACERS - 6), [a.text for a in answers]
    assert {a.json()["code"] for a in answers if a.status_code == 409} == {"refund_exceeds_paid"}
    refunds = _refunds(server.base_url, order["id"], api.auth)
    assert sum(float(r["amount"]) for r in refunds) == pytest.approx(18.0)
    assert_ledger_holds(server.database_url, "refunds racing each other")
