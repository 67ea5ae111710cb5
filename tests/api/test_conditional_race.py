"""If-Match on an order's writes is decided inside the write's transaction: two writes sent with
the same ETag at the same moment, through two instances of the service on one database, cannot
both apply, on either engine."""

import threading
from typing import Any

import pytest
from sqlalchemy import Engine

from app.core import etags
from app.core.config import Settings
from app.main import create_app
from tests.support.factories import product_body
from tests.support.serving import serving

# How long a write that reached its If-Match check waits there for the other write to reach
# its own. With the check inside the write's transaction the other cannot (it waits for the
# order's row on PostgreSQL, for SQLite's write lock), so the first goes on after this; a
# check made anywhere before that (a read of its own, then the write) would let both arrive
# together, and both pass.
MEET_SECONDS = 1.0


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("PATCH", {"status": "PAID"}), ("DELETE", None)),
        (("PUT", {"status": "CANCELED"}), ("PATCH", {"status": "PAID"})),
    ],
)
def test_two_writes_with_the_same_if_match_cannot_both_apply(
    settings: Settings,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    first: tuple[str, Any],
    second: tuple[str, Any],
):
    meeting = threading.Barrier(2, timeout=MEET_SECONDS)
    checked = etags.require_match

    def meet_then_check(header: str | None, view: Any, what: str) -> None:
        try:
            meeting.wait()
        except threading.BrokenBarrierError:
            pass  # the other write is still waiting for the row or the lock: as it must
        checked(header, view, what)

    with (
        serving(create_app(settings, engine)) as one,
        serving(create_app(settings, engine)) as other,
    ):
        product = one.post("/products", json=product_body(stock=5)).json()
        order = one.post("/orders", json={"product_id": product["id"], "quantity": 2}).json()
        path = f"/orders/{order['id']}"
        tag = one.get(path).headers["etag"]
        monkeypatch.setattr(etags, "require_match", meet_then_check)
        answers: dict[int, Any] = {}

        def write(index: int, client: Any, method: str, body: Any) -> None:
            answers[index] = client.request(method, path, json=body, headers={"If-Match": tag})

        threads = [
            threading.Thread(target=write, args=(0, one, *first)),
            threading.Thread(target=write, args=(1, other, *second)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        monkeypatch.undo()
        final = one.get(path)

    assert not any(thread.is_alive() for thread in threads)
    statuses = sorted(answer.status_code for answer in answers.values())
    assert statuses == [200, 412], [answer.text for answer in answers.values()]
    applied = next(a for a in answers.values() if a.status_code == 200)
    refused = next(a for a in answers.values() if a.status_code == 412)
    assert final.json()["status"] == applied.json()["status"]
    assert refused.json()["code"] == "precondition_failed"
    assert refused.json()["etag"] == final.headers["etag"] == applied.headers["etag"]
