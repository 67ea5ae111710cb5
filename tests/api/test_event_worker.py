"""The delivery worker in-process, on both engines: a delivery whose attempts all ran out
unsettled (workers that died holding it) is marked failed, never sent past the last attempt."""

import asyncio

from app.core.config import Settings
from app.events import delivery as event_delivery  # a test variable is named `delivery`
from app.events import subscriptions
from tests.support.event_receiver import Receiver
from tests.support.factories import Db, make_order, make_product


def test_a_delivery_past_its_last_attempt_is_failed_without_being_sent(db: Db, settings: Settings):
    receiver = Receiver()
    configured = settings.model_copy(
        update={"event_allow_private_urls": True, "event_max_attempts": 3}
    )
    with receiver.running():
        subscription = db.write(
            subscriptions.create,
            url=receiver.url("/gone"),
            types=["order.created"],
            description=None,
        )
        make_order(db, (make_product(db), 1))  # its order.created: one delivery
        # Three attempts claimed, none settled: each worker holding it died mid-attempt.
        assert db.execute("UPDATE event_deliveries SET attempt = 3") == 1

        async def one_round() -> int:
            worker = event_delivery.DeliveryWorker(db.database, configured)
            claimed = await worker.round()
            await asyncio.wait_for(asyncio.gather(*getattr(worker, "_sending", ())), 10)
            await worker.stop()
            return claimed

        assert db.run(one_round()) == 1
        (delivery,) = db.rows(
            "SELECT status, error, next_attempt_at FROM event_deliveries"
            " WHERE subscription_id = :id",
            id=subscription["id"],
        )

    assert delivery["status"] == "failed" and delivery["next_attempt_at"] is None
    assert "no attempt left" in delivery["error"]
    assert receiver.received == []
