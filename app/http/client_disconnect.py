"""Whether the client of the request being served has disconnected: one adapter, per server.

The request path asks once a request has waited for its turn (a client that left while it
queued gets no work at all) and sets `client_gone` for the unit of work, which checks it just
before COMMIT (app/db/base.py), so an order nobody will hear of is rolled back instead.

ASGI offers no way to ask "has the client gone?" without waiting on `receive()`, which would
consume the body. So this reads the server's own state, and only uvicorn's:

- uvicorn (h11 and httptools protocols): `receive` is a bound method of its per-request
  `RequestResponseCycle`, whose `disconnected` flag the protocol sets when the connection
  closes. Read through `receive.__self__`, an internal: tests/live/test_request_path_live.py
  checks that the pinned uvicorn still sets it on a real disconnect, with both protocols, so
  an upgrade that moves it fails there.
- any other server (hypercorn, granian, Starlette's TestClient): the probe always answers
  "still here". Nothing breaks: a client that left is noticed only when its answer is sent,
  and a unit of work it started commits as it would have for a client that stayed.
"""

from collections.abc import Callable

from starlette.types import Receive

from app.db.base import client_gone

__all__ = ["client_gone", "probe"]


def _still_here() -> bool:
    return False


def probe(receive: Receive) -> Callable[[], bool]:
    """A function saying, without waiting, whether the client of `receive` has gone."""
    cycle = getattr(receive, "__self__", None)
    if cycle is not None and hasattr(cycle, "disconnected"):
        return lambda: bool(cycle.disconnected)
    return _still_here
