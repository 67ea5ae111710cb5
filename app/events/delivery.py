"""Push deliveries: the worker each process runs, claiming due deliveries and POSTing them.

Each subscriber's queue moves on its own: the worker claims, per subscription with deliveries
due, up to PER_SUBSCRIPTION of them, and sends each as soon as it is claimed, claiming again as
each one ends. A receiver that never answers holds at most PER_SUBSCRIPTION of this worker's
IN_FLIGHT slots for one delivery timeout; every other subscriber's events and retries go out
on time beside it.

A claim is one write transaction (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so workers and
instances take disjoint deliveries; SQLite: the single writer) that takes a lease: until
`lease_until` no other worker picks those deliveries up. Each attempt is settled in a
transaction of its own, only by the lease's holder. A worker that dies mid-delivery leaves
its lease to expire, and the delivery is sent again (at least once) under the same
`webhook-id`, the event's id, so that receivers can drop the repeat.

Whatever a receiver answers is stored as text that every engine accepts (no NUL, no control
characters, no invalid UTF-8, at most 500 characters), so every attempt can be settled.
"""

import asyncio
import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from opentelemetry.trace import Tracer

from app import __version__, signing
from app.core import tracing
from app.core.config import Settings
from app.core.formats import utcnow
from app.db.base import Connection, Database, Sql
from app.events import metrics, outbox, subscriptions, url_safety

log = logging.getLogger("app.event_delivery")

# Deliveries one worker sends at once: to one subscriber, and to all of them together.
PER_SUBSCRIPTION = 4
IN_FLIGHT = 64
# Subscriptions with deliveries due that one look at the queue considers.
DUE_SUBSCRIPTIONS = 1000
POLL_SECONDS = 1.0
# After a wake-up (an event recorded here, maybe not yet committed), look again this soon.
WAKE_RETRIES = (0.005, 0.02, 0.05, 0.1, 0.25)
BACKLOG_EVERY_SECONDS = 5.0
MAX_RETRY_SECONDS = 3600.0
RESPONSE_READ_BYTES = 4096
ERROR_CHARS = 500
USER_AGENT = f"orders-inventory-events/{__version__}"

_DUE = (
    "status = 'pending' AND next_attempt_at <= :now"
    " AND (lease_until IS NULL OR lease_until <= :now)"
)
# A disabled subscription's pending deliveries wait, unclaimed, until it is enabled again.
_ENABLED = "subscription_id IN (SELECT id FROM event_subscriptions WHERE enabled)"
_DUE_SUBSCRIPTIONS = Sql(
    f"SELECT DISTINCT subscription_id FROM event_deliveries WHERE {_DUE} AND {_ENABLED}"
    " LIMIT :limit"
)
_CLAIM = (
    "UPDATE event_deliveries SET lease_token = :token, lease_until = :lease_until,"
    " attempt = attempt + 1, attempted_at = :now WHERE id IN (SELECT id FROM event_deliveries"
    f" WHERE subscription_id = :subscription_id AND {_DUE} AND {_ENABLED}"
    " ORDER BY next_attempt_at LIMIT :limit{})"
)
_CLAIM_DUE = Sql(sqlite=_CLAIM.format(""), postgresql=_CLAIM.format(" FOR UPDATE SKIP LOCKED"))
_CLAIMED = Sql(
    "SELECT d.id, d.attempt, d.lease_token, d.subscription_id, e.id AS event_id, e.type,"
    " e.created_at, e.actor, e.data, e.traceparent, s.url, s.secret, s.previous_secret,"
    " s.previous_secret_expires_at FROM event_deliveries d"
    " JOIN events e ON e.seq = d.event_seq JOIN event_subscriptions s"
    " ON s.id = d.subscription_id WHERE d.lease_token = :token"
)
_SETTLE = Sql(
    "UPDATE event_deliveries SET status = :status, response_status = :response_status,"
    " error = :error, duration_ms = :duration_ms, next_attempt_at = :next_attempt_at,"
    " lease_token = NULL, lease_until = NULL WHERE id = :id AND lease_token = :token"
)
# The subscription's failing clock: started by a failed attempt, stopped by a delivered one.
_FAILING_FROM = Sql(
    "UPDATE event_subscriptions SET failing_since = :now WHERE id = :id AND failing_since IS NULL"
)
_NOT_FAILING = Sql(
    "UPDATE event_subscriptions SET failing_since = NULL"
    " WHERE id = :id AND failing_since IS NOT NULL"
)
# A delivery released unsent (shutdown) gets its attempt back and is due again at once.
_RELEASE = Sql(
    "UPDATE event_deliveries SET lease_token = NULL, lease_until = NULL,"
    " attempt = attempt - 1 WHERE lease_token = :token"
)
# The backlog: what waits to be sent (a disabled subscription's deliveries wait for no worker).
_OLDEST_PENDING = Sql(
    f"SELECT created_at FROM event_deliveries WHERE status = 'pending' AND {_ENABLED}"
    " ORDER BY created_at LIMIT 1"
)
_PENDING = Sql(f"SELECT count(*) FROM event_deliveries WHERE status = 'pending' AND {_ENABLED}")


# One claimed delivery: the event to send and where, under which lease.
@dataclass(frozen=True)
class Job:
    id: int
    attempt: int
    token: str
    event: dict[str, Any]
    url: str
    secret: str = field(repr=False)  # never in a log line or a traceback's repr
    subscription_id: int = 0
    traceparent: str | None = None  # the trace the event was recorded in, if any
    # After a rotation, until it expires: the replaced secret, which signs too.
    previous_secret: str | None = field(default=None, repr=False)

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> "Job":
        event = outbox.public({**row, "id": row["event_id"]})
        signing = subscriptions.signing_secrets(row, utcnow())
        previous = signing[0] if len(signing) > 1 else None
        return cls(
            row["id"], row["attempt"], row["lease_token"], event, row["url"], row["secret"],
            row["subscription_id"], row["traceparent"], previous,
        )  # fmt: skip

    def secrets(self) -> list[str]:
        """The secrets to sign with: the replaced one (while it signs) first, then the current."""
        return (
            [self.secret] if self.previous_secret is None else [self.previous_secret, self.secret]
        )


# What one attempt came to.
@dataclass(frozen=True)
class Result:
    result: str  # one of metrics.ATTEMPT_RESULTS (app/events/metrics.py)
    response_status: int | None
    error: str | None
    duration_ms: int


def retry_delay(attempt: int, base: float, rng: random.Random = random._inst) -> float:
    """Seconds before retry `attempt` + 1: base × 2^(attempt−1), at most an hour, minus up to
    a quarter at random, so receivers that failed together are not retried together."""
    delay = min(MAX_RETRY_SECONDS, base * 2 ** min(attempt - 1, 32))
    return delay * rng.uniform(0.75, 1.0)


def safe_text(text: str, limit: int = ERROR_CHARS) -> str:
    """`text` as every engine stores it: NUL, other control characters and lone surrogates
    (a receiver's bytes decoded with "replace" or an exception's message) become U+FFFD."""
    return "".join(char if char.isprintable() else "\ufffd" for char in text[:limit])


async def due_subscriptions(conn: Connection, now: datetime) -> list[int]:
    """The subscriptions with deliveries due now."""
    rows = await conn.fetch_all(_DUE_SUBSCRIPTIONS, {"now": now, "limit": DUE_SUBSCRIPTIONS})
    return [row["subscription_id"] for row in rows]


async def claim(
    conn: Connection,
    subscription_id: int,
    token: str,
    now: datetime,
    lease: timedelta,
    limit: int = PER_SUBSCRIPTION,
) -> list[Job]:
    """Lease up to `limit` of one subscription's due deliveries, oldest due first."""
    params = {
        "subscription_id": subscription_id,
        "token": token,
        "now": now,
        "lease_until": now + lease,
        "limit": limit,
    }
    if await conn.execute(_CLAIM_DUE, params) == 0:
        return []
    return [Job.of(row) for row in await conn.fetch_all(_CLAIMED, {"token": token})]


async def settle(conn: Connection, job: Job, outcome: str, result: Result, retry_at: Any) -> bool:
    """Record an attempt (only the lease's holder may), and start or stop the subscription's
    failing clock."""
    status = {"delivered": "delivered", "retried": "pending", "failed": "failed"}[outcome]
    params = {
        "id": job.id,
        "token": job.token,
        "status": status,
        "response_status": result.response_status,
        "error": result.error,
        "duration_ms": result.duration_ms,
        "next_attempt_at": retry_at,
    }
    if await conn.execute(_SETTLE, params) != 1:
        return False
    if outcome == "delivered":
        await conn.execute(_NOT_FAILING, {"id": job.subscription_id})
    else:
        await conn.execute(_FAILING_FROM, {"id": job.subscription_id, "now": utcnow()})
    return True


async def release(conn: Connection, token: str) -> int:
    return await conn.execute(_RELEASE, {"token": token})


async def backlog(conn: Connection) -> tuple[datetime | None, int]:
    """When the oldest pending delivery was created, and how many are pending."""
    return await conn.fetch_value(_OLDEST_PENDING), await conn.fetch_value(_PENDING)


def body_of(event: Mapping[str, Any]) -> bytes:
    return outbox.dumps(event).encode()


async def _read_some(response: httpx.Response) -> bytes:
    """At most RESPONSE_READ_BYTES of the answer: a huge body cannot hold the worker."""
    read = b""
    async for chunk in response.aiter_raw():
        read += chunk
        if len(read) >= RESPONSE_READ_BYTES:
            break
    return read[:RESPONSE_READ_BYTES]


async def post(
    client: httpx.AsyncClient,
    job: Job,
    settings: Settings,
    resolver: url_safety.Resolver | None = None,
    traceparent: str | None = None,
) -> Result:
    """One attempt, all of it (DNS check, connect, send, answer) within the delivery timeout;
    `traceparent` (W3C trace context) is sent as a header when given."""
    started = time.monotonic()

    def done(result: str, status: int | None = None, error: str | None = None) -> Result:
        elapsed = int((time.monotonic() - started) * 1000)
        return Result(result, status, safe_text(error) if error else None, elapsed)

    try:
        async with asyncio.timeout(settings.event_delivery_timeout_seconds):
            target = await url_safety.check(
                job.url, allow_private=settings.event_allow_private_urls, resolver=resolver
            )
            body = body_of(job.event)
            headers = signing.signed_headers(
                job.secrets(), job.event["id"], int(time.time()), body, standard=True
            )
            headers.update(
                {"content-type": "application/json", "user-agent": USER_AGENT,
                 "host": target.host_header()}
            )  # fmt: skip
            if traceparent is not None:
                headers["traceparent"] = traceparent
            extensions = {"sni_hostname": target.host} if target.host != target.address else {}
            request = client.build_request(
                "POST", target.request_url(), content=body, headers=headers, extensions=extensions
            )
            response = await client.send(request, stream=True)
            try:
                answer = await _read_some(response)
            finally:
                await response.aclose()
    except url_safety.UrlNotAllowed as error:
        return done("url_not_allowed", error=f"url_not_allowed: {error}")
    except (TimeoutError, httpx.TimeoutException):
        return done(
            "timeout", error=f"no answer within {settings.event_delivery_timeout_seconds} s"
        )
    except httpx.HTTPError as error:
        return done("network_error", error=f"{type(error).__name__}: {error}")
    except Exception as error:  # a bug must not wedge the batch: count it as a failed attempt
        log.exception("unexpected error delivering %s", job.event["id"])
        return done("network_error", error=f"internal error: {type(error).__name__}")
    if 200 <= response.status_code < 300:
        return done("success", response.status_code)
    detail = answer.decode("utf-8", "replace").strip()[:200]
    return done("http_error", response.status_code, f"HTTP {response.status_code}: {detail}")


def new_client(settings: Settings) -> httpx.AsyncClient:
    """The HTTP client deliveries go out on. No redirects (a 3xx is a failed attempt), no
    proxy from the environment: the connection goes to the address that passed the check,
    nowhere else."""
    return httpx.AsyncClient(
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(settings.event_delivery_timeout_seconds),
        limits=httpx.Limits(max_connections=IN_FLIGHT),
    )


class DeliveryWorker:
    """Claims and sends due deliveries until stopped; one per worker process."""

    def __init__(
        self,
        database: Database,
        settings: Settings,
        client: httpx.AsyncClient | None = None,
        resolver: url_safety.Resolver | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self.database, self.settings, self.resolver = database, settings, resolver
        self.tracer = tracer  # tracing on: each attempt is a span of the event's trace
        timeout = settings.event_delivery_timeout_seconds
        self.client = client or new_client(settings)
        self.lease = timedelta(seconds=2 * timeout + 5)
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unsubscribe = outbox.on_record(self.wake)
        self._backlog_at = 0.0
        # The deliveries being sent, and how many of them go to each subscription.
        self._sending: dict[asyncio.Task[None], Job] = {}
        self._per_subscription: Counter[int] = Counter()

    def start(self) -> "DeliveryWorker":
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="event-delivery")
        return self

    def wake(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    async def stop(self) -> None:
        """Stop claiming, let the deliveries in hand finish (each is bounded by the timeout),
        and release those still unsent after it, for another worker to send."""
        self._unsubscribe()
        self._stopping = True
        self._wake.set()
        grace = self.settings.event_delivery_timeout_seconds + 5
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, grace)
            except TimeoutError:
                log.warning("event delivery worker did not stop in time; its leases will expire")
        if self._sending:
            _, unfinished = await asyncio.wait(set(self._sending), timeout=grace)
            tokens = {self._sending[task].token for task in unfinished}
            for task in unfinished:
                task.cancel()
            for token in tokens:
                await self.database.write(release, token)
        await self.client.aclose()

    async def _run(self) -> None:
        retries: list[float] = []
        while not self._stopping:
            try:
                claimed = await self.round()
            except Exception:
                log.warning("event delivery round failed; will retry", exc_info=True)
                claimed = 0
            if claimed or self._stopping:
                continue
            if retries:
                await asyncio.sleep(retries.pop(0))
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
                retries = list(WAKE_RETRIES)
            except TimeoutError:
                pass
            self._wake.clear()

    async def round(self) -> int:
        """Claim what is due for each subscription with room, and start sending it; the
        number of deliveries claimed. Sending runs on: the next round does not wait for it."""
        now = utcnow()
        await self._measure_backlog(now)
        room = IN_FLIGHT - len(self._sending)
        if room <= 0:
            return 0
        due = await self.database.read(due_subscriptions, now)
        ready = [s for s in due if self._per_subscription[s] < PER_SUBSCRIPTION]
        random.shuffle(ready)  # when room runs out, no subscriber is always last
        claimed = 0
        for subscription_id in ready:
            limit = min(PER_SUBSCRIPTION - self._per_subscription[subscription_id], room - claimed)
            if limit <= 0 or self._stopping:
                break
            token = uuid.uuid4().hex
            jobs = await self.database.write(
                claim, subscription_id, token, utcnow(), self.lease, limit
            )
            for job in jobs:
                self._send(job)
            claimed += len(jobs)
        return claimed

    def _send(self, job: Job) -> None:
        self._per_subscription[job.subscription_id] += 1
        task = asyncio.create_task(self._deliver(job), name=f"event-delivery-{job.id}")
        self._sending[task] = job
        task.add_done_callback(self._sent)

    def _sent(self, task: "asyncio.Task[None]") -> None:
        job = self._sending.pop(task)
        self._per_subscription[job.subscription_id] -= 1
        if self._per_subscription[job.subscription_id] <= 0:
            del self._per_subscription[job.subscription_id]
        self._wake.set()  # room for this subscriber's next delivery

    async def _deliver(self, job: Job) -> None:
        if job.attempt > self.settings.event_max_attempts:
            # Only a delivery whose last attempts were never settled (workers that died
            # holding it) gets here: give up rather than send past EVENT_MAX_ATTEMPTS.
            given_up = Result("network_error", None, "no attempt left: its last was not settled", 0)
            await self._settle(job, "failed", given_up, None)
            metrics.given_up()
            return
        name = f"event delivery {job.event['type']}"
        with tracing.sending(self.tracer, job.traceparent, name) as traceparent:
            result = await post(self.client, job, self.settings, self.resolver, traceparent)
            tracing.annotate(
                {"app.event.id": job.event["id"], "app.delivery.attempt": job.attempt,
                 "http.request.method": "POST", "http.response.status_code": result.response_status,
                 "error.type": None if result.result == "success" else result.result},
                failed=result.result != "success",
            )  # fmt: skip
        if result.result == "success":
            outcome, retry_at = "delivered", None
        elif job.attempt >= self.settings.event_max_attempts:
            outcome, retry_at = "failed", None
        else:
            delay = retry_delay(job.attempt, self.settings.event_retry_base_seconds)
            outcome, retry_at = "retried", utcnow() + timedelta(seconds=delay)
            # Look again when it falls due, not at the next poll after.
            asyncio.get_running_loop().call_later(delay + 0.01, self._wake.set)
        await self._settle(job, outcome, result, retry_at)
        metrics.attempted(result.result, outcome)
        if outcome != "delivered":
            log.info(
                "event delivery attempt failed",
                extra={"delivery_id": job.id, "event_id": job.event["id"],
                       "attempt": job.attempt, "outcome": outcome, "error": result.error},
            )  # fmt: skip

    async def _settle(self, job: Job, outcome: str, result: Result, retry_at: Any) -> None:
        try:
            settled = await self.database.write(settle, job, outcome, result, retry_at)
        except Exception:  # the lease expires and the delivery is sent again
            log.exception("delivery %s could not be settled", job.id)
            return
        if not settled:
            log.warning("delivery %s was gone or held by another worker when settled", job.id)

    async def _measure_backlog(self, now: datetime) -> None:
        if time.monotonic() - self._backlog_at < BACKLOG_EVERY_SECONDS:
            return
        self._backlog_at = time.monotonic()
        oldest, pending = await self.database.scan(backlog)  # O(pending): off the loop
        metrics.backlog((now - oldest).total_seconds() if oldest else 0.0, pending)


def start(database: Database, settings: Settings, tracer: Tracer | None = None) -> DeliveryWorker:
    """The worker of this process, running (call from the lifespan, on the serving loop)."""
    return DeliveryWorker(database, settings, tracer=tracer).start()
