"""generate_webhook_signature.py as a person runs it: a subprocess, its output, its curl command."""

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app import signing
from tests.support.live_server import ROOT

SCRIPT = ROOT / "generate_webhook_signature.py"
BODY = '{"type": "payment.succeeded", "order_id": 1, "amount": "39.98", "payment_id": "pay_1"}'
# Under tests/live: the whole module is `live`, its checks of the script's output included.
pytestmark = pytest.mark.live


def run(*args: str, stdin: str | None = None, env: dict[str, str] | None = None):
    unset = ("WEBHOOK_SECRET", "STRIPE_WEBHOOK_SECRET", "BASE_URL")
    environment = {k: v for k, v in os.environ.items() if k not in unset}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        input=stdin,
        text=True,
        capture_output=True,
        timeout=60,
        env={**environment, **(env or {})},
    )


def printed_headers(stdout: str) -> dict[str, str]:
    head = stdout.split("\n\n", 1)[0]
    return dict(line.split(": ", 1) for line in head.splitlines())


def test_help_describes_the_options():
    result = run("--help")
    assert result.returncode == 0
    for option in ("--secret", "--file", "--event-id", "--timestamp", "--standard", "--stripe"):
        assert option in result.stdout


def test_prints_our_three_headers_signed_with_app_signing():
    result = run(BODY, "--secret", "s3cret", "--event-id", "evt_1", "--timestamp", "1790000000")

    assert result.returncode == 0, result.stderr
    assert printed_headers(result.stdout) == {
        "X-Event-Id": "evt_1",
        "X-Webhook-Timestamp": "1790000000",
        "X-Webhook-Signature": signing.sign("s3cret", "evt_1", 1790000000, BODY.encode()),
    }


def test_defaults_are_a_fresh_uuid_and_now_and_the_secret_from_the_environment():
    before = int(time.time())
    headers = printed_headers(run(BODY, env={"WEBHOOK_SECRET": "from-env"}).stdout)

    assert len(headers["X-Event-Id"]) == 36
    assert before <= int(headers["X-Webhook-Timestamp"]) <= int(time.time())
    parsed = signing.read_headers(headers)
    assert signing.verify(["from-env"], parsed, BODY.encode()) == int(parsed.timestamp)


def test_reads_the_body_from_stdin_and_from_a_file_byte_for_byte(tmp_path: Path):
    raw = BODY + "\n"
    (tmp_path / "event.json").write_text(raw)
    for result in (
        run("--secret", "k", "--event-id", "e", "--timestamp", "1", stdin=raw),
        run(
            "--file",
            str(tmp_path / "event.json"),
            "--secret",
            "k",
            "--event-id",
            "e",
            "--timestamp",
            "1",
        ),
    ):
        assert printed_headers(result.stdout)["X-Webhook-Signature"] == signing.sign(
            "k", "e", 1, raw.encode()
        )


def test_standard_option_prints_standard_webhooks_headers_one_signature_per_secret():
    result = run(BODY, "--secret", "old,new", "--standard", "--event-id", "m", "--timestamp", "5")
    headers = printed_headers(result.stdout)
    assert headers["webhook-signature"] == " ".join(
        signing.sign_standard(secret, "m", 5, BODY.encode()) for secret in ("old", "new")
    )


def test_without_a_secret_it_fails_with_a_message():
    result = run(BODY)
    assert result.returncode == 2
    assert "WEBHOOK_SECRET" in result.stderr


def test_the_printed_curl_command_is_accepted_by_a_live_server(live_server):
    if subprocess.run(["which", "curl"], capture_output=True).returncode != 0:
        pytest.fail("curl is needed to run the printed command") if os.environ.get(
            "CI"
        ) == "true" else pytest.skip("curl is not installed")
    auth = {"Authorization": f"Bearer {os.environ['API_KEY']}"} if "API_KEY" in os.environ else {}
    with live_server(env={"WEBHOOK_SECRET": "curl-secret"}) as server:
        product = httpx.post(
            f"{server.base_url}/products",
            headers=auth,
            json={"sku": "CURL-1", "name": "Mug", "price": "19.99", "stock": 5},
        ).json()
        order = httpx.post(
            f"{server.base_url}/orders",
            headers=auth,
            json={"product_id": product["id"], "quantity": 2},
        ).json()
        body = BODY.replace('"order_id": 1', f'"order_id": {order["id"]}')
        printed = run(body, "--secret", "curl-secret", "--base-url", server.base_url).stdout
        command = printed.split("\n\n", 1)[1]

        response = subprocess.run(
            ["bash", "-c", command], capture_output=True, text=True, timeout=60
        )

        assert "HTTP/1.1 200" in response.stdout, response.stdout
        assert '"duplicate":false' in response.stdout
        paid = httpx.get(f"{server.base_url}/orders/{order['id']}", headers=auth).json()
        assert paid["status"] == "PAID"
    assert shlex.split(command)[0] == "curl"


STRIPE_BODY = (
    '{"id": "evt_1", "object": "event", "type": "payment_intent.succeeded", "data": {"object": '
    '{"id": "pi_1", "object": "payment_intent", "amount": 3998, "amount_received": 3998, '
    '"currency": "usd", "metadata": {"order_id": "1"}}}}'
)
STRIPE_SECRET = "whsec_" + "Tz7mKq2VbX9cR4nL8wP1yJ6hF3dS5aGe"


def test_stripe_option_prints_a_stripe_signature_that_stripes_library_accepts():
    import stripe

    now = int(time.time())
    result = run(
        STRIPE_BODY,
        "--stripe",
        "--timestamp",
        str(now),
        env={"STRIPE_WEBHOOK_SECRET": STRIPE_SECRET},
    )

    assert result.returncode == 0, result.stderr
    header = printed_headers(result.stdout)["Stripe-Signature"]
    assert header == signing.stripe_signature_header([STRIPE_SECRET], now, STRIPE_BODY.encode())
    assert stripe.Webhook.construct_event(STRIPE_BODY, header, STRIPE_SECRET)["id"] == "evt_1"
    assert "/webhooks/stripe" in result.stdout.split("\n\n", 1)[1]


def test_stripe_option_refuses_what_does_not_apply_and_names_its_secret():
    assert run(STRIPE_BODY, "--stripe", "--standard", "--secret", "k").returncode == 2
    missing = run(STRIPE_BODY, "--stripe", env={"WEBHOOK_SECRET": "not-stripes"})
    assert missing.returncode == 2 and "STRIPE_WEBHOOK_SECRET" in missing.stderr


def test_the_printed_stripe_curl_command_pays_an_order_on_a_live_server(live_server):
    if subprocess.run(["which", "curl"], capture_output=True).returncode != 0:
        pytest.fail("curl is needed to run the printed command") if os.environ.get(
            "CI"
        ) == "true" else pytest.skip("curl is not installed")
    auth = {"Authorization": f"Bearer {os.environ['API_KEY']}"} if "API_KEY" in os.environ else {}
    with live_server(env={"STRIPE_WEBHOOK_SECRET": STRIPE_SECRET}) as server:
        product = httpx.post(
            f"{server.base_url}/products",
            headers=auth,
            json={"sku": "CURL-S", "name": "Mug", "price": "19.99", "stock": 5},
        ).json()
        order = httpx.post(
            f"{server.base_url}/orders",
            headers=auth,
            json={"product_id": product["id"], "quantity": 2},
        ).json()
        body = STRIPE_BODY.replace('"order_id": "1"', f'"order_id": "{order["id"]}"')
        printed = run(body, "--stripe", "--secret", STRIPE_SECRET, "--base-url", server.base_url)
        command = printed.stdout.split("\n\n", 1)[1]

        response = subprocess.run(
            ["bash", "-c", command], capture_output=True, text=True, timeout=60
        )

        assert "HTTP/1.1 200" in response.stdout, response.stdout
        assert '"duplicate":false' in response.stdout
        paid = httpx.get(f"{server.base_url}/orders/{order['id']}", headers=auth).json()
        assert paid["status"] == "PAID"
