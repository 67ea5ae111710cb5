"""Managing a subscription over HTTP, on both engines: PATCH (pausing included), rotating its
secret, a test ping, sending a failed delivery again, and the service disabling a subscription
whose attempts have all failed for 3 days.

No delivery worker runs in these tests (the app is served without its lifespan): each test
drives the worker's rounds itself, so what is sent, and when, is the test's doing. Receivers
listen on 127.0.0.1; refusals run with private URLs refused and a resolver that never asks the
system's.
"""

import asyncio
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from standardwebhooks.webhooks import Webhook

from app import housekeeping
from app.core.config import Settings
from app.events import delivery as event_delivery
from app.events import outbox, subscriptions, url_safety
from app.main import create_app
from tests.support.event_receiver import Answer, Received, Receiver
from tests.support.factories import Db, make_order, make_product
from tests.support.response_shapes import check_responses

NOWHERE = "http://127.0.0.1:9/hooks"  # loopback, nothing listens


def app_client(settings: Settings, engine: Engine, **overrides: object) -> TestClient:
    """The app without its lifespan (no worker, no chores), every answer checked."""
    configured = settings.model_copy(update={"event_allow_private_urls": True, **overrides})
    app = create_app(configured, engine)
    client = TestClient(app)
    check_responses(client, app)
    return client


@pytest.fixture
def api(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    yield app_client(settings, engine, event_max_attempts=1)


def subscribe(api: TestClient, url: str = NOWHERE, types: list[str] | None = None) -> dict:
    response = api.post("/event-subscriptions", json={"url": url, "types": types or ["*"]})
    assert response.status_code == 201, response.text
    return response.json()


def one_round(db: Db, settings: Settings) -> int:
    """One worker round, waiting for every send it started; the number claimed."""
    configured = settings.model_copy(
        update={"event_allow_private_urls": True, "event_max_attempts": 1}
    )

    async def run() -> int:
        worker = event_delivery.DeliveryWorker(db.database, configured)
        claimed = await worker.round()
        await asyncio.wait_for(asyncio.gather(*getattr(worker, "_sending", ())), 10)
        await worker.stop()
        return claimed

    return db.run(run())


# ------------------------------------------------------------------ PATCH


def test_patch_changes_only_the_fields_sent(api: TestClient):
    created = subscribe(api, types=["order.paid"])
    path = f"/event-subscriptions/{created['id']}"

    described = api.patch(path, json={"description": "erp"})
    retyped = api.patch(path, json={"types": ["order.created", "order.paid", "order.created"][:2]})
    moved = api.patch(path, json={"url": "http://127.0.0.1:9/other"})
    cleared = api.patch(path, json={"description": None})
    unchanged = api.patch(path, json={})

    assert described.status_code == 200, described.text
    assert described.json() == {**{k: v for k, v in created.items() if k != "secret"},
                                "description": "erp"}  # fmt: skip
    assert retyped.json()["types"] == ["order.created", "order.paid"]
    assert retyped.json()["description"] == "erp"
    assert moved.json()["url"] == "http://127.0.0.1:9/other"
    assert cleared.json()["description"] is None
    assert unchanged.json() == cleared.json() == api.get(path).json()
    assert "secret" not in unchanged.json()


@pytest.mark.parametrize(
    "body",
    [
        {"url": None},
        {"types": None},
        {"enabled": None},
        {"url": ""},
        {"types": []},
        {"types": ["order.refunded"]},
        {"types": ["*", "order.paid"]},
        {"types": ["order.paid", "order.paid"]},
        {"enabled": "no"},
        {"enabled": 0},
        {"description": "x" * 501},
        {"secret": "whsec_mine"},
        {"failing_since": None},
    ],
)
def test_patch_refuses_invalid_bodies_with_422_and_changes_nothing(api: TestClient, body: dict):
    created = subscribe(api)
    path = f"/event-subscriptions/{created['id']}"

    response = api.patch(path, json=body)

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"
    assert api.get(path).json() == {k: v for k, v in created.items() if k != "secret"}


def test_patch_of_an_unknown_subscription_is_404(api: TestClient):
    response = api.patch("/event-subscriptions/999", json={"enabled": False})

    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_patch_to_a_private_url_is_422_url_not_allowed(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
):
    async def public(host: str, port: int) -> list[str]:  # never the system resolver
        return ["93.184.215.14"]

    monkeypatch.setattr(url_safety, "system_resolver", public)
    strict = app_client(settings, engine, event_allow_private_urls=False)
    created = subscribe(strict, "https://hooks.example/in")
    path = f"/event-subscriptions/{created['id']}"

    refused = [strict.patch(path, json={"url": url}) for url in ("http://10.0.0.1/in", NOWHERE)]

    assert [r.status_code for r in refused] == [422, 422]
    assert {r.json()["code"] for r in refused} == {"url_not_allowed"}
    assert strict.get(path).json()["url"] == "https://hooks.example/in"


def test_a_disabled_subscription_gets_nothing_queued_and_its_pending_deliveries_wait(
    api: TestClient, db: Db, settings: Settings
):
    receiver = Receiver()
    mug = make_product(db)  # before the subscriptions: its product.created is no one's
    with receiver.running():
        paused = subscribe(api, receiver.url("/paused"))
        other = subscribe(api, receiver.url("/other"))
        make_order(db, (mug, 1))  # pending for both, before the pause
        off = api.patch(f"/event-subscriptions/{paused['id']}", json={"enabled": False})
        make_order(db, (mug, 1))  # while paused: queued for the other only

        queued = {
            s["id"]: [d["status"] for d in api.get(f"/event-subscriptions/{s['id']}/deliveries")
                      .json()["items"]]
            for s in (paused, other)
        }  # fmt: skip
        assert one_round(db, settings) == 2  # the other's two; the paused one's waits
        held = receiver.at("/paused")
        on = api.patch(f"/event-subscriptions/{paused['id']}", json={"enabled": True})
        assert one_round(db, settings) == 1  # the one it had pending before the pause
        after = api.get(f"/event-subscriptions/{paused['id']}/deliveries").json()["items"]

    assert off.status_code == 200 and off.json()["enabled"] is False
    assert on.json()["enabled"] is True
    assert queued == {paused["id"]: ["pending"], other["id"]: ["pending", "pending"]}
    assert held == [] and len(receiver.at("/other")) == 2
    assert [d["status"] for d in after] == ["delivered"]


# ------------------------------------------------------------------ rotate-secret


def test_rotate_answers_a_new_secret_once_and_the_overlap(api: TestClient):
    created = subscribe(api)
    path = f"/event-subscriptions/{created['id']}"
    before = datetime.now(UTC)

    rotated = api.post(f"{path}/rotate-secret")
    again = api.post(f"{path}/rotate-secret", json={"expire_old_after_seconds": 60})
    at_once = api.post(f"{path}/rotate-secret", json={"expire_old_after_seconds": 0})

    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    assert body["secret"].startswith("whsec_") and body["secret"] != created["secret"]
    assert {k: v for k, v in body.items() if k not in ("secret", "previous_secret_expires_at")} == {
        k: v for k, v in created.items() if k != "secret"
    }
    expires = datetime.fromisoformat(body["previous_secret_expires_at"])
    assert before + timedelta(seconds=86390) < expires < before + timedelta(seconds=86410)
    expires = datetime.fromisoformat(again.json()["previous_secret_expires_at"])
    assert expires < before + timedelta(seconds=70)
    assert at_once.json()["previous_secret_expires_at"] is None
    secrets = {created["secret"], body["secret"], again.json()["secret"], at_once.json()["secret"]}
    assert len(secrets) == 4
    assert not any(secret in api.get(path).text for secret in secrets)


@pytest.mark.parametrize(
    "body", [{"expire_old_after_seconds": -1}, {"expire_old_after_seconds": 86401},
             {"expire_old_after_seconds": "60"}, {"secret": "whsec_mine"}]
)  # fmt: skip
def test_rotate_refuses_invalid_bodies_with_422_and_keeps_the_secret(
    api: TestClient, db: Db, body: dict
):
    created = subscribe(api)

    response = api.post(f"/event-subscriptions/{created['id']}/rotate-secret", json=body)

    assert response.status_code == 422 and response.json()["code"] == "validation_error"
    stored = db.rows("SELECT secret, previous_secret FROM event_subscriptions")
    assert stored == [{"secret": created["secret"], "previous_secret": None}]


def test_rotate_of_an_unknown_subscription_is_404(api: TestClient):
    response = api.post("/event-subscriptions/999/rotate-secret")

    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_deliveries_carry_both_signatures_until_the_old_secret_expires(
    api: TestClient, db: Db, settings: Settings
):
    receiver = Receiver()
    with receiver.running():
        created = subscribe(api, receiver.url("/in"), ["order.created"])
        path = f"/event-subscriptions/{created['id']}"
        new = api.post(f"{path}/rotate-secret", json={"expire_old_after_seconds": 600}).json()
        mug = make_product(db)
        make_order(db, (mug, 1))
        one_round(db, settings)
        db.execute("UPDATE event_subscriptions SET previous_secret_expires_at = :past",
                   past=datetime.now(UTC) - timedelta(seconds=1))  # fmt: skip
        make_order(db, (mug, 1))
        one_round(db, settings)

    overlap, after = receiver.at("/in")
    signatures = overlap.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    body = _body(overlap)
    for secret in (created["secret"], new["secret"]):
        assert Webhook(secret).verify(body, overlap.headers)["id"] == overlap.webhook_id
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    assert Webhook(new["secret"]).verify(_body(after), after.headers)
    with pytest.raises(Exception, match="(?i)signature"):
        Webhook(created["secret"]).verify(_body(after), after.headers)


def _body(received: Received) -> bytes:
    return received.body


# ------------------------------------------------------------------ test ping


def test_a_test_ping_is_sent_signed_and_answers_what_the_receiver_answered(api: TestClient, db: Db):
    receiver = Receiver(lambda r: Answer(204 if r.path == "/ok" else 503, body=b"down"))
    with receiver.running():
        ok = subscribe(api, receiver.url("/ok"))
        receiver.secrets["/ok"] = ok["secret"]
        down = subscribe(api, receiver.url("/down"))
        pinged = api.post(f"/event-subscriptions/{ok['id']}/test")
        failing = api.post(f"/event-subscriptions/{down['id']}/test")

    assert pinged.status_code == 200, pinged.text
    answer = pinged.json()
    assert answer["delivered"] is True and answer["result"] == "success"
    assert answer["response_status"] == 204 and answer["error"] is None
    assert answer["duration_ms"] >= 0
    (got,) = receiver.at("/ok")
    assert got.verified and got.webhook_id == answer["event_id"]
    assert got.event is not None and got.event["type"] == "ping"
    assert got.event["data"] == {"subscription_id": ok["id"]}
    assert failing.json()["delivered"] is False and failing.json()["response_status"] == 503
    assert failing.json()["error"] == "HTTP 503: down"
    # Not stored: no event in the feed, no delivery in any log.
    assert db.value("SELECT count(*) FROM events") == 0
    assert db.value("SELECT count(*) FROM event_deliveries") == 0


def test_a_test_ping_to_nothing_listening_answers_the_error(api: TestClient):
    created = subscribe(api)

    answer = api.post(f"/event-subscriptions/{created['id']}/test").json()

    assert answer["delivered"] is False and answer["result"] == "network_error"
    assert answer["response_status"] is None and answer["error"]


def test_a_test_ping_of_an_unknown_subscription_is_404(api: TestClient):
    response = api.post("/event-subscriptions/999/test")

    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_a_test_ping_to_a_url_now_private_is_refused_before_any_connection(
    settings: Settings, engine: Engine, db: Db, monkeypatch: pytest.MonkeyPatch
):
    """A name that resolved to a public address at creation and to loopback now: the ping is
    not sent (the resolver is the test's, the address one where nothing listens)."""
    answers = iter([["93.184.215.14"], ["127.0.0.1"]])

    async def rebinding(host: str, port: int) -> list[str]:
        return next(answers)

    monkeypatch.setattr(url_safety, "system_resolver", rebinding)
    strict = app_client(settings, engine, event_allow_private_urls=False)
    created = subscribe(strict, "http://hooks.example:9/in")

    answer = strict.post(f"/event-subscriptions/{created['id']}/test").json()

    assert answer["delivered"] is False and answer["result"] == "url_not_allowed"


# ------------------------------------------------------------------ retry


def test_a_failed_delivery_is_sent_again_with_the_same_webhook_id(
    api: TestClient, db: Db, settings: Settings
):
    receiver = Receiver(lambda r: Answer(500 if r.nth == 1 else 200))
    with receiver.running():
        created = subscribe(api, receiver.url("/in"), ["order.created"])
        make_order(db, (make_product(db), 1))
        one_round(db, settings)  # one attempt allowed: failed
        (failed,) = api.get(f"/event-subscriptions/{created['id']}/deliveries").json()["items"]
        path = f"/event-subscriptions/{created['id']}/deliveries/{failed['id']}/retry"
        retried = api.post(path)
        one_round(db, settings)
        (done,) = api.get(f"/event-subscriptions/{created['id']}/deliveries").json()["items"]
        again = api.post(path)

    assert failed["status"] == "failed" and failed["response_status"] == 500
    assert retried.status_code == 202, retried.text
    assert retried.json()["status"] == "pending" and retried.json()["attempt"] == 0
    assert retried.json()["id"] == failed["id"] and retried.json()["event_id"] == failed["event_id"]
    assert done["status"] == "delivered" and done["response_status"] == 200
    first, second = receiver.at("/in")
    assert first.webhook_id == second.webhook_id == failed["event_id"]
    assert again.status_code == 409 and again.json()["code"] == "delivery_not_failed"
    assert again.json()["delivery_status"] == "delivered"


def test_retry_of_a_pending_delivery_is_409_and_unknown_ones_are_404(api: TestClient, db: Db):
    mug = make_product(db)  # before the subscriptions: its product.created is no one's
    created = subscribe(api)
    other = subscribe(api)
    make_order(db, (mug, 1))
    (pending,) = api.get(f"/event-subscriptions/{created['id']}/deliveries").json()["items"]
    retry = "/event-subscriptions/{}/deliveries/{}/retry"

    conflict = api.post(retry.format(created["id"], pending["id"]))
    missing = api.post(retry.format(created["id"], pending["id"] + 1000))
    foreign = api.post(retry.format(other["id"], pending["id"]))
    no_subscription = api.post(retry.format(999, pending["id"]))
    invalid = api.post(retry.format(created["id"], 0))

    assert conflict.status_code == 409 and conflict.json()["code"] == "delivery_not_failed"
    assert conflict.json()["delivery_status"] == "pending"
    for response in (missing, foreign, no_subscription):
        assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert invalid.status_code == 422
    assert db.rows("SELECT status, attempt FROM event_deliveries WHERE id = :id",
                   id=pending["id"]) == [{"status": "pending", "attempt": 0}]  # fmt: skip


# ------------------------------------------------------------------ failing for 3 days


def test_the_failing_clock_starts_at_a_failed_attempt_and_stops_at_a_delivered_one(
    api: TestClient, db: Db, settings: Settings
):
    answers = iter([500, 200])
    receiver = Receiver(lambda r: Answer(next(answers)))
    with receiver.running():
        created = subscribe(api, receiver.url("/in"), ["order.created"])
        mug = make_product(db)
        make_order(db, (mug, 1))
        one_round(db, settings)
        failing = db.value("SELECT failing_since FROM event_subscriptions")
        make_order(db, (mug, 1))
        one_round(db, settings)
        recovered = db.value("SELECT failing_since FROM event_subscriptions")

    assert failing is not None and recovered is None
    assert api.get(f"/event-subscriptions/{created['id']}").json()["enabled"] is True


def test_a_subscription_failing_for_3_days_is_disabled_with_an_event_and_a_log_line(
    api: TestClient, db: Db, caplog: pytest.LogCaptureFixture
):
    now = datetime.now(UTC)
    failing = subscribe(api, types=["order.paid"])
    recent = subscribe(api)
    healthy = subscribe(api)
    watcher = subscribe(api, types=["subscription.disabled"])
    db.execute("UPDATE event_subscriptions SET failing_since = :at WHERE id = :id",
               at=now - timedelta(days=3, minutes=1), id=failing["id"])  # fmt: skip
    db.execute("UPDATE event_subscriptions SET failing_since = :at WHERE id = :id",
               at=now - timedelta(days=2, hours=23), id=recent["id"])  # fmt: skip

    with caplog.at_level(logging.WARNING, logger="app.event_subscriptions"):
        disabled = db.write(subscriptions.disable_failing)
        again = db.write(subscriptions.disable_failing)

    assert [s["id"] for s in disabled] == [failing["id"]] and again == []
    shown = {s["id"]: s["enabled"] for s in api.get("/event-subscriptions").json()["items"]}
    assert shown == {failing["id"]: False, recent["id"]: True, healthy["id"]: True,
                     watcher["id"]: True}  # fmt: skip
    # Read from the outbox: on PostgreSQL the feed shows it once every older transaction on
    # the server has ended, which another test's may not have.
    (row,) = db.rows("SELECT id, type, created_at, actor, data FROM events")
    event = outbox.public(row)
    assert event["type"] == "subscription.disabled"
    assert event["actor"] == "system"
    assert event["data"]["subscription"] == api.get(f"/event-subscriptions/{failing['id']}").json()
    assert event["data"]["reason"] == "failing"
    assert event["data"]["failing_since"].endswith("Z")
    # Queued for the subscribers of the type (and of "*"), not for the one it disabled.
    queued = db.rows("SELECT subscription_id FROM event_deliveries ORDER BY subscription_id")
    assert [row["subscription_id"] for row in queued] == sorted(
        [recent["id"], healthy["id"], watcher["id"]]
    )
    lines = [r for r in caplog.records if r.name == "app.event_subscriptions"]
    assert len(lines) == 1 and getattr(lines[0], "subscription_id", None) == failing["id"]


def test_enabling_again_restarts_the_failing_clock(api: TestClient, db: Db):
    created = subscribe(api)
    db.execute("UPDATE event_subscriptions SET failing_since = :at",
               at=datetime.now(UTC) - timedelta(days=4))  # fmt: skip
    # Enabling one that is enabled already does not postpone its disabling.
    api.patch(f"/event-subscriptions/{created['id']}", json={"enabled": True})
    assert [s["id"] for s in db.write(subscriptions.disable_failing)] == [created["id"]]

    enabled = api.patch(f"/event-subscriptions/{created['id']}", json={"enabled": True})

    assert enabled.json()["enabled"] is True
    assert db.value("SELECT failing_since FROM event_subscriptions") is None
    assert db.write(subscriptions.disable_failing) == []


def test_the_housekeeping_chore_disables_failing_subscriptions_and_says_how_many(
    api: TestClient, db: Db
):
    failing = [subscribe(api)["id"] for _ in range(3)]
    db.execute("UPDATE event_subscriptions SET failing_since = :at",
               at=datetime.now(UTC) - timedelta(days=3, seconds=1))  # fmt: skip

    first = db.run(housekeeping.disable_failing(db.database))
    second = db.run(housekeeping.disable_failing(db.database))

    assert (first, second) == (3, 0)
    assert db.value("SELECT count(*) FROM event_subscriptions WHERE enabled") == 0
    assert db.value("SELECT count(*) FROM events WHERE type = 'subscription.disabled'") == 3
    assert len(failing) == 3
