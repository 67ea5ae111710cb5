"""The outbox and the pull feed: what happened, for the shop's other systems.

`record(conn, type, data)` inserts an event in the caller's transaction, so an event exists if
and only if its change committed, and fans it out, in the same transaction, to a pending
delivery for each subscription whose types match (app/events/delivery.py sends them).

The feed's order, and why a cursor is safe. A sequence number handed out at insert is not
enough on PostgreSQL: a transaction may take seq 5, another seq 6 and commit first; a reader
that saw 6 and moved its cursor past it would never see 5. So each event also records the id
of the transaction that wrote it (`txid`), the feed is ordered by (txid, seq), and a reader is
shown only events whose txid is below its snapshot's xmin: every transaction below xmin has
ended, and every transaction still to commit has a txid at or above it, so nothing can ever
appear below a cursor already handed out. A long-running transaction holds the feed back (not
deliveries) until it ends. SQLite has one writer at a time and AUTOINCREMENT seqs, so commits
happen in seq order: txid is 0 and every committed event is shown.
"""

import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson

from app.core import cursors, tracing
from app.core.access import current_actor
from app.core.formats import rfc3339 as timestamp_text
from app.core.formats import utcnow
from app.db.base import Connection, Sql
from app.tables import EventType, OrderStatus

_TXID = "CAST(CAST(pg_current_xact_id() AS text) AS bigint)"
_HORIZON = "CAST(CAST(pg_snapshot_xmin(pg_current_snapshot()) AS text) AS bigint)"
_INSERT = "INSERT INTO events (id, type, txid, created_at, data, actor, traceparent)"
# One pending delivery per matching subscription. `types` holds a JSON array of names, so
# finding `"order.paid"` (quotes included) inside it is an exact match. A substring function,
# not LIKE: SQLite prepares a statement again whenever a LIKE pattern's parameter changes
# (bench/README.md "Event fan-out"), which tripled the cost of this statement.
_FAN_OUT_TEXT = (
    "INSERT INTO event_deliveries"
    " (event_seq, subscription_id, attempt, status, created_at, next_attempt_at)"
    " SELECT {seq}, s.id, 0, 'pending', {now}, {now} FROM event_subscriptions s{joined}"
    " WHERE s.enabled AND (s.types = '[\"*\"]' OR {find}(s.types, :quoted_type) > 0)"
)
# SQLite: the event, then its deliveries (SQLite has no data-modifying CTEs).
_INSERT_EVENT = Sql.only(
    "sqlite",
    f"{_INSERT} VALUES (:id, :type, 0, :recorded_at, :data, :actor, :traceparent) RETURNING seq",
)
_FAN_OUT = Sql.only(
    "sqlite", _FAN_OUT_TEXT.format(seq=":seq", now=":recorded_at", joined="", find="instr")
)


def recording_ctes(data: str, source: str = "") -> str:
    """PostgreSQL: two CTEs, `event` and `fanned`, that insert an event whose data is the SQL
    expression `data` and its deliveries, for a statement that records an event along with the
    change it reports (app/orders.py places an order that way: one round trip). They take
    `event_parameters(type)`. `source` (`FROM placed`) is what `data` reads: when it
    has no row, nothing is recorded. A parameter in a SELECT list is typed as text unless told,
    hence the casts."""
    insert = (
        f"{_INSERT} SELECT :id, :type, {_TXID}, CAST(:recorded_at AS timestamptz), {data},"
        f" CAST(:actor AS varchar), CAST(:traceparent AS text) {source} RETURNING seq"
    )
    fan_out = _FAN_OUT_TEXT.format(
        seq="event.seq", now="CAST(:recorded_at AS timestamptz)", joined=", event", find="strpos"
    )
    return f"event AS ({insert}), fanned AS ({fan_out})"


_FEED = (
    "SELECT seq, txid, id, type, created_at, actor, data FROM events"
    " WHERE (txid, seq) > (:txid, :seq) AND txid < {}{} ORDER BY txid, seq LIMIT :limit"
)
# One slot per event type: a filter names each type at most once (repeats are dropped), so
# every type asked for is bound and the statement is prepared once, whatever the filter.
_TYPE_SLOTS = len(EventType)
_OF_TYPES = f" AND type IN ({', '.join(f':t{n}' for n in range(_TYPE_SLOTS))})"
_FEED_ALL = Sql(sqlite=_FEED.format("1", ""), postgresql=_FEED.format(_HORIZON, ""))
_FEED_OF_TYPES = Sql(
    sqlite=_FEED.format("1", _OF_TYPES), postgresql=_FEED.format(_HORIZON, _OF_TYPES)
)
# PostgreSQL: the event and its deliveries in one statement (one round trip, not two).
_RECORD_PG = Sql.only(
    "postgresql", f"WITH {recording_ctes('CAST(:data AS text)')} SELECT seq FROM event"
)
FEED = "events"  # the cursor kind of the feed
# The event each status move records (whatever made the move: the API, a webhook, expiry).
ORDER_EVENTS = {
    OrderStatus.PAID: EventType.ORDER_PAID,
    OrderStatus.PARTIALLY_SHIPPED: EventType.ORDER_PARTIALLY_SHIPPED,
    OrderStatus.SHIPPED: EventType.ORDER_SHIPPED,
    OrderStatus.CANCELED: EventType.ORDER_CANCELED,
}
# Where a consumer that has seen nothing starts: before every event on both engines.
START = (0, 0)
# Called after each record (the delivery worker's wake-up); see app/events/delivery.py.
_listeners: list[Callable[[], None]] = []


def on_record(listener: Callable[[], None]) -> Callable[[], None]:
    """Call `listener` whenever an event is recorded in this process (before its commit)."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener)


def event_parameters(type: EventType) -> dict[str, Any]:
    """The parameters recording an event of `type` takes: its new id, its actor (who makes
    the change, app/core/access.py), and the trace it is recorded in (tracing on), for
    its deliveries to send on."""
    return {
        "id": new_event_id(),
        "type": str(type),
        "actor": current_actor(),
        "quoted_type": f'"{type}"',
        "recorded_at": utcnow(),
        "traceparent": tracing.current_traceparent(),
    }


def recorded() -> None:
    """Tell this process's listeners an event was recorded (the delivery worker's wake-up)."""
    for listener in _listeners:
        listener()


def new_event_id() -> str:
    """`evt_` and 24 hex digits: the time in milliseconds, then 48 random bits. Ids that grow
    with time land at the end of the unique index on them, as random ones would not: one
    index page written per commit instead of one per event (a quarter of an order's WAL)."""
    return f"evt_{time.time_ns() // 1_000_000:012x}{secrets.token_hex(6)}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return timestamp_text(value)
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> str:
    """Compact JSON, UTF-8 unescaped, times as the API writes them (orjson: an event is written
    on every order, and the standard library's encoder was a tenth of placing one)."""
    return orjson.dumps(value, default=_jsonable, option=orjson.OPT_PASSTHROUGH_DATETIME).decode()


def rfc3339(moment: datetime | None) -> str | None:
    return None if moment is None else timestamp_text(moment)


async def record(conn: Connection, type: EventType, data: Mapping[str, Any]) -> str:
    """Insert an event into the outbox in the caller's transaction; return its id."""
    params = {**event_parameters(type), "data": dumps(data)}
    if conn.dialect == "postgresql":
        await conn.execute(_RECORD_PG, params)
    else:
        params["seq"] = await conn.fetch_value(_INSERT_EVENT, params)
        await conn.execute(_FAN_OUT, params)
    recorded()
    return str(params["id"])


def encode_cursor(kind: str, *position: int) -> str:
    """An opaque `next` value of list `kind` holding a position of one or more numbers."""
    return cursors.encode_ids(kind, *position)


def decode_cursor(kind: str, cursor: str, size: int) -> tuple[int, ...]:
    """The position in a `next` value of list `kind`; 422 invalid_cursor for anything else."""
    return cursors.decode_ids(kind, cursor, size)


invalid_cursor = cursors.invalid_cursor


def public(row: Mapping[str, Any]) -> dict[str, Any]:
    """An event as the feed and the deliveries show it."""
    return {
        "id": row["id"],
        "type": row["type"],
        "created_at": rfc3339(row["created_at"]),
        "actor": row["actor"],
        "data": orjson.loads(row["data"]),
    }


async def feed(
    conn: Connection, *, after: tuple[int, int], types: Sequence[EventType], limit: int
) -> tuple[list[dict[str, Any]], tuple[int, int]]:
    """A page of the feed after `after`, oldest first, and the position to read on from."""
    params: dict[str, Any] = {"txid": after[0], "seq": after[1], "limit": limit}
    wanted = list(dict.fromkeys(types))
    if wanted and set(wanted) != set(EventType):
        padded = [*wanted, *[wanted[0]] * _TYPE_SLOTS][:_TYPE_SLOTS]
        params.update({f"t{n}": str(value) for n, value in enumerate(padded)})
        rows = await conn.fetch_all(_FEED_OF_TYPES, params)
    else:
        rows = await conn.fetch_all(_FEED_ALL, params)
    position = (rows[-1]["txid"], rows[-1]["seq"]) if rows else after
    return [public(row) for row in rows], position


_PURGE_DELIVERIES = Sql(
    "DELETE FROM event_deliveries WHERE event_seq IN"
    " (SELECT seq FROM events WHERE created_at < :cutoff ORDER BY seq LIMIT :limit)"
)
_PURGE_EVENTS = Sql(
    "DELETE FROM events WHERE seq IN"
    " (SELECT seq FROM events WHERE created_at < :cutoff ORDER BY seq LIMIT :limit)"
)
PURGE_BATCH = 1000


async def purge_expired(conn: Connection, retention: timedelta) -> int:
    """Delete up to PURGE_BATCH events older than `retention`, with their deliveries.

    Bounded, so one purge never holds the writer long; call again while it returns a full batch.
    """
    params = {"cutoff": utcnow() - retention, "limit": PURGE_BATCH}
    await conn.execute(_PURGE_DELIVERIES, params)
    return await conn.execute(_PURGE_EVENTS, params)
