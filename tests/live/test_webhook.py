#!/usr/bin/env python3
"""Black-box checks of POST /webhooks/payment against a running server.

Stand-alone, against a server you started (two secrets on it make the rotation check run):

    BASE_URL=http://127.0.0.1:8000 WEBHOOK_SECRET=old-secret,new-secret \
        python -m tests.live.test_webhook

It prints each check and exits non-zero if any fails. Under pytest a fixture starts a real
server (2 workers, each engine) with two secrets and runs the same checks. Each check creates
its own product and order through the API; with API_KEY set, it is sent as a Bearer token on
every call but the webhook's.
"""

import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from app import signing
from tests.support.databases import ENGINES, database_url
from tests.support.live_server import LiveServer

WEBHOOK = "/webhooks/payment"


# The service as a sender and a shop client see it.
class WebhookApi:
    def __init__(self, base_url: str, secrets: list[str], api_key: str | None = None) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=15)
        self.secrets = secrets
        self.auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def create_order(self, price: str = "19.99", quantity: int = 2) -> dict:
        product = self.http.post(
            "/products",
            headers=self.auth,
            json={
                "sku": f"WH-{uuid.uuid4().hex[:12]}",
                "name": "Webhook check",
                "price": price,
                "stock": 10,
            },
        )
        assert product.status_code == 201, product.text
        order = self.http.post(
            "/orders",
            headers=self.auth,
            json={"product_id": product.json()["id"], "quantity": quantity},
        )
        assert order.status_code == 201, order.text
        return order.json()

    def status(self, order: dict) -> str:
        return self.http.get(f"/orders/{order['id']}", headers=self.auth).json()["status"]

    def deliver(
        self,
        body: bytes,
        *,
        secret: str | None = None,
        event_id: str | None = None,
        timestamp: int | None = None,
        headers: dict | None = None,
    ) -> httpx.Response:
        signed = signing.signed_headers(
            [secret or self.secrets[0]],
            event_id or f"evt_{uuid.uuid4().hex}",
            int(time.time()) if timestamp is None else timestamp,
            body,
        )
        return self.post(body, {**signed, **(headers or {})})

    def post(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return self.http.post(
            WEBHOOK, content=body, headers={"Content-Type": "application/json", **headers}
        )


def payment(order: dict, type_: str = "payment.succeeded", amount: str | None = None) -> bytes:
    return json.dumps(
        {
            "type": type_,
            "order_id": order["id"],
            "amount": amount or order["total"],
            "payment_id": f"pay_{uuid.uuid4().hex[:10]}",
        }
    ).encode()


def expect(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, (
        f"expected {status}, got {response.status_code}: {response.text}"
    )
    body = response.json()
    if code is not None:
        assert body.get("code") == code, f"expected code {code}, got {body}"
    return body


# ---------------------------------------------------------------- the checks


def check_valid_signature(api: WebhookApi) -> None:
    order = api.create_order()
    body = expect(api.deliver(payment(order), event_id=f"evt_ok_{order['id']}"), 200)
    assert body == {
        "event_id": f"evt_ok_{order['id']}",
        "duplicate": False,
        "order_id": order["id"],
        "order_status": "PAID",
    }, body
    assert api.status(order) == "PAID"


def check_wrong_signature(api: WebhookApi) -> None:
    order = api.create_order()
    expect(api.deliver(payment(order), secret="not-the-secret"), 401, "invalid_signature")
    assert api.status(order) == "PENDING"


def check_missing_headers(api: WebhookApi) -> None:
    order = api.create_order()
    expect(api.post(payment(order), {}), 401, "invalid_signature")
    body = payment(order)
    signed = signing.signed_headers(api.secrets[:1], "evt_x", int(time.time()), body)
    del signed["X-Event-Id"]
    expect(api.post(body, signed), 401, "invalid_signature")
    assert api.status(order) == "PENDING"


def check_stale_timestamp(api: WebhookApi) -> None:
    order = api.create_order()
    hour_ago = int(time.time()) - 3600
    expect(api.deliver(payment(order), timestamp=hour_ago), 401, "stale_timestamp")
    assert api.status(order) == "PENDING"


def check_replay_is_duplicate(api: WebhookApi) -> None:
    order = api.create_order()
    body, event_id = payment(order, "payment.failed"), f"evt_replay_{uuid.uuid4().hex}"
    first = expect(api.deliver(body, event_id=event_id), 200)
    again = expect(api.deliver(body, event_id=event_id), 200)
    assert (first["duplicate"], again["duplicate"]) == (False, True), (first, again)
    assert again["order_status"] == "CANCELED" == api.status(order)


def check_captured_body_under_new_event_id(api: WebhookApi) -> None:
    order = api.create_order()
    body = payment(order)
    captured = signing.signed_headers(api.secrets[:1], "evt_captured", int(time.time()), body)
    expect(
        api.post(body, {**captured, "X-Event-Id": f"evt_{uuid.uuid4().hex}"}),
        401,
        "invalid_signature",
    )
    assert api.status(order) == "PENDING"


def check_wrong_amount(api: WebhookApi) -> None:
    order = api.create_order(price="19.99", quantity=2)
    expect(api.deliver(payment(order, amount="39.97")), 422, "amount_mismatch")
    assert api.status(order) == "PENDING"


def check_rotation(api: WebhookApi) -> None:
    if len(api.secrets) < 2:
        raise Skipped("needs two secrets in WEBHOOK_SECRET (old,new), as on the server")
    for secret in api.secrets[:2]:
        order = api.create_order()
        expect(api.deliver(payment(order), secret=secret), 200)
        assert api.status(order) == "PAID"


CHECKS: list[Callable[[WebhookApi], None]] = [
    check_valid_signature,
    check_wrong_signature,
    check_missing_headers,
    check_stale_timestamp,
    check_replay_is_duplicate,
    check_captured_body_under_new_event_id,
    check_wrong_amount,
    check_rotation,
]


class Skipped(Exception):
    """A check that cannot run against this server's set-up."""


# ---------------------------------------------------------------- stand-alone


def run_all(api: WebhookApi) -> int:
    failures = 0
    for check in CHECKS:
        name = check.__name__.removeprefix("check_").replace("_", " ")
        try:
            check(api)
        except Skipped as reason:
            print(f"SKIP {name}: {reason}")
            continue
        except (AssertionError, httpx.HTTPError) as error:
            failures += 1
            print(f"FAIL {name}: {error}")
            continue
        print(f"PASS {name}")
    print(
        f"{len(CHECKS) - failures}/{len(CHECKS)} checks passed"
        if failures == 0
        else f"{failures} of {len(CHECKS)} checks failed"
    )
    return failures


def main() -> int:
    secrets = signing.parse_secrets(os.environ.get("WEBHOOK_SECRET"))
    if not secrets:
        print("set WEBHOOK_SECRET to the server's secret(s)", file=sys.stderr)
        return 2
    base_url = os.environ.get("BASE_URL", "http://127.0.0.1:8000")
    print(f"webhook checks against {base_url}")
    return 1 if run_all(WebhookApi(base_url, secrets, os.environ.get("API_KEY"))) else 0


# ---------------------------------------------------------------- under pytest

SECRETS = ["live-webhook-secret-old", "live-webhook-secret-new"]


@pytest.fixture(scope="module", params=ENGINES)
def webhook_api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebhookApi]:
    """One real server per engine (2 workers, two secrets) shared by this module's checks."""
    tmp = tmp_path_factory.mktemp(f"webhook-{request.param}")
    env = {"WEBHOOK_SECRET": ",".join(SECRETS)}
    with (
        database_url(request.param, tmp) as url,
        LiveServer(url, workers=2, env=env, log_path=tmp / "server.log") as server,
    ):
        yield WebhookApi(server.base_url, SECRETS, os.environ.get("API_KEY"))


@pytest.mark.live
@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
def test_webhook_against_a_live_server(webhook_api: WebhookApi, check) -> None:
    check(webhook_api)


if __name__ == "__main__":
    sys.exit(main())
