"""The request path: one pure-ASGI layer between the server and the routes.

What every request goes through, in one place and in this order: its request id; the header
limits (431); `/healthz`, answered at once; a CORS preflight, answered before the key check;
503 `overloaded` when the admission queue is full, before the key and the body; the API key
(401), its caller (name, role, principal) and the call's roles (403); the actor of the
request's changes (app/core/access.py); the schema gate (503 `schema_out_of_date`); unknown
query parameters (422); the body, read whole within its size and time limits (413, 408);
admission (a turn, or 503 `overloaded` when none comes in time), and no work at all for a
client that left while it waited; then the route.
On the way out: `X-Request-ID` and CORS headers, no body for HEAD, a 500 problem for a crash,
the metrics, and one access line.

One layer rather than a stack of five: each layer of a stack wraps `send` again and scans the
headers again, which is most of what the old stack's 110–230 µs a request went on (bench/README.md
"One request-path layer"). Every path answers with or without a trailing slash, directly (the
router's redirects are off), and every GET route answers HEAD.
"""

import asyncio
import logging
import os
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core import access, metrics, tracing
from app.core.access import Role
from app.core.errors import ApiError, send_problem
from app.core.logs import clip, redact_query, request_id_var, write_line
from app.db.readiness import Readiness
from app.db.schema_check import schema_out_of_date
from app.http import client_disconnect, metrics_endpoint, path_rules
from app.http.api_keys import CREDENTIAL_HEADERS, ApiKeys, credential, is_exempt, unauthorized
from app.http.client_disconnect import client_gone
from app.http.cors import Cors
from app.http.known_routes import RouteTable
from app.http.request_limits import headers_too_large, payload_too_large, read_body, replaying
from app.http.request_queue import Admission, overloaded

_VALID_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._-]{1,128}$")
_JSON = (b"content-type", b"application/json")
_HEALTHZ = b'{"status":"ok"}'
# Answered ahead of the admission queue: readiness from its cache, metrics from memory
# (app/http/path_rules.py, the one table of the paths treated apart).
_UNQUEUED = path_rules.UNQUEUED_PATHS
LARGE_BODY_PATHS = path_rules.LARGE_BODY_PATHS
# The status an access line shows for a client that left before its answer (nginx's).
CLIENT_GONE = 499
log = logging.getLogger("app.requests")
access_log = logging.getLogger("app.access")


# What the request path needs from the headers, found in one pass over them.
class _Headers:
    __slots__ = ("size", "request_id", "origin", "length", "chunked", "credentials", "preflight")

    def __init__(self, headers: list[tuple[bytes, bytes]]) -> None:
        self.size, self.request_id, self.origin = 0, None, None
        self.length: int | None = None
        self.chunked = self.preflight = False
        self.credentials: list[bytes] = []
        for name, value in headers:
            self.size += len(name) + len(value)
            if name == b"content-length":
                self.length = int(value) if value.isdigit() else None
            elif name in CREDENTIAL_HEADERS:
                self.credentials.append(credential(name, value))
            elif name == b"x-request-id":
                if _VALID_REQUEST_ID.match(value):
                    self.request_id = value.decode("ascii")
            elif name == b"transfer-encoding":
                self.chunked = True
            elif name == b"origin":
                self.origin = value
            elif name == b"access-control-request-method":
                self.preflight = True


# One request's answer on its way out: headers added, status noted, no body for HEAD.
class _Answer:
    __slots__ = ("send", "extra", "head", "status", "started", "scope")

    def __init__(self, send: Send, extra: list[tuple[bytes, bytes]], scope: Scope) -> None:
        self.send, self.extra, self.scope = send, extra, scope
        self.head = scope["method"] == "HEAD"
        self.status, self.started = 500, False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started, self.status = True, message["status"]
            message = {**message, "headers": [*message.get("headers", ()), *self.extra]}
        elif self.head and message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await self.send(message)

    async def respond(self, status: int, body: bytes, headers: list[Any] | None = None) -> None:
        length = (b"content-length", str(len(body)).encode())
        start = [_JSON, length] if body else [length]
        await self(
            {"type": "http.response.start", "status": status, "headers": start + (headers or [])}
        )
        await self({"type": "http.response.body", "body": body})


def _internal_error() -> ApiError:
    return ApiError(
        "internal_error",
        "An unexpected error occurred; it has been logged with this request's id.",
    )


class RequestPath:
    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: RouteTable,
        readiness: Readiness,
        admission: Admission,
        keys: ApiKeys | None,
        cors: Cors | None,
        max_body_bytes: int,
        body_timeout: float,
        large_body_bytes: int | None = None,
        max_header_bytes: int,
        max_headers: int,
        traces: bool = False,
    ) -> None:
        self.app, self.routes, self.readiness, self.admission = app, routes, readiness, admission
        self.traces = traces  # tracing on: the access line carries the trace id
        self.keys, self.cors = keys, cors
        self.max_body_bytes, self.body_timeout = max_body_bytes, body_timeout
        self.large_body_bytes = large_body_bytes or max_body_bytes
        self.max_header_bytes, self.max_headers = max_header_bytes, max_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        sent_path = scope["path"]
        headers = _Headers(scope["headers"])
        request_id = headers.request_id or os.urandom(16).hex()
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        state["request_id"], state["principal"] = request_id, None
        state["actor"] = actor = access.ANONYMOUS if self.keys is None else None
        token = request_id_var.set(request_id)
        acting = access.set_actor(actor or access.SYSTEM)
        if len(sent_path) > 1 and sent_path[-1] == "/":
            scope["path"] = sent_path.rstrip("/") or "/"
        answer = _Answer(send, [(b"x-request-id", request_id.encode())], scope)
        try:
            await self._serve(scope, receive, answer, headers)
        except Exception:
            log.exception("unhandled error", extra={"request_id": request_id})
            if not answer.started:
                await send_problem(scope, answer, _internal_error())
        finally:
            self._record(scope, answer, sent_path, time.perf_counter() - started)
            request_id_var.reset(token)
            access.reset_actor(acting)

    async def _serve(
        self, scope: Scope, receive: Receive, answer: _Answer, headers: _Headers
    ) -> None:
        path, method = scope["path"], scope["method"]
        if self.cors is not None:
            answer.extra += self.cors.response_headers(headers.origin)
        if path == "/healthz" and method in ("GET", "HEAD"):
            await answer.respond(200, _HEALTHZ)
            return
        if len(scope["headers"]) > self.max_headers or headers.size > self.max_header_bytes:
            await self._refuse(
                scope, answer, headers_too_large(self.max_header_bytes, self.max_headers)
            )
            return
        if self.cors is not None:
            if method == "OPTIONS" and headers.preflight and self.cors.allows(headers.origin):
                await self._preflight(scope, answer, self.cors)
                return
        # Beyond the queue: refused before the key check and the body, so that shedding costs
        # the worker's loop as little as it can and the loop gets round to the probes sooner
        # (bench/README.md "A cheaper refusal").
        if path not in _UNQUEUED and self.admission.full():
            await self._refuse(scope, answer, overloaded())
            return
        error = self._check(scope, path, method, headers)
        if error is not None:
            await send_problem(scope, answer, error)
            return
        if method == "HEAD":
            scope = answer.scope = {**scope, "method": "GET"}  # the server still sees HEAD
            scope["state"]["head"] = True  # a streamed answer (an export) skips its rows
        app_receive = receive
        if headers.length or headers.chunked:
            body = await self._read_body(receive, headers, path)
            if body is None:
                answer.status = CLIENT_GONE
                return
            if isinstance(body, ApiError):
                await self._refuse(scope, answer, body)
                return
            app_receive = replaying(body, receive)
        if path in _UNQUEUED:
            await self.app(scope, app_receive, answer)
        else:
            await self._admitted(scope, receive, app_receive, answer)

    def _check(self, scope: Scope, path: str, method: str, headers: _Headers) -> ApiError | None:
        """The refusals that need nothing but the request line and headers."""
        target = "GET" if method == "HEAD" else method
        if self.keys is not None and not is_exempt(path):
            caller = self.keys.authenticate(headers.credentials)
            if caller is None:
                return unauthorized()
            state = scope["state"]
            state["principal"], state["actor"] = caller.principal, caller.name
            access.set_actor(caller.name)
            if caller.role is not Role.ADMIN:
                refusal = self.routes.forbidden(path, target, caller.role)
                if refusal is not None:
                    return refusal
        if self.readiness.schema_behind and not _schema_free(path):
            return schema_out_of_date()
        if scope["query_string"]:
            return self.routes.unknown_query(path, target, scope["query_string"])
        return None

    async def _read_body(
        self, receive: Receive, headers: _Headers, path: str
    ) -> bytes | ApiError | None:
        limit = self.large_body_bytes if path in LARGE_BODY_PATHS else self.max_body_bytes
        if headers.length is not None and headers.length > limit:
            return payload_too_large(limit)
        return await read_body(receive, limit, self.body_timeout)

    async def _admitted(
        self, scope: Scope, receive: Receive, app_receive: Receive, answer: _Answer
    ) -> None:
        if not await self.admission.acquire():
            await self._refuse(scope, answer, overloaded())
            return
        try:
            gone = client_disconnect.probe(receive)
            if gone():  # it waited for its turn and left: start nothing for it
                answer.status = CLIENT_GONE
                metrics.request_refused("client_gone")
                return
            token = client_gone.set(gone)
            # One turn of the loop before the work: requests that arrived together interleave
            # instead of each running to completion in one iteration (list p99 707 -> 249 ms,
            # bench/README.md "One yield per request").
            await asyncio.sleep(0)
            try:
                await self.app(scope, app_receive, answer)
            finally:
                client_gone.reset(token)
        finally:
            self.admission.release()

    async def _preflight(self, scope: Scope, answer: _Answer, cors: Cors) -> None:
        """A preflight from an allowed origin: 204, or 400 for a method or header the API does
        not allow; its CORS headers are the preflight's own, not a simple answer's."""
        preflight_headers, refusal = cors.preflight(scope)
        answer.extra = [answer.extra[0], *preflight_headers]  # the request id, then these
        if refusal is None:
            await answer.respond(204, b"")
        else:
            await self._refuse(scope, answer, refusal)

    async def _refuse(self, scope: Scope, answer: _Answer, error: ApiError) -> None:
        metrics.request_refused(error.code)
        await send_problem(scope, answer, error)

    def _record(self, scope: Scope, answer: _Answer, sent_path: str, seconds: float) -> None:
        method = scope["method"]
        method = method if method in metrics_endpoint.KNOWN_METHODS else "OTHER"
        route = answer.scope.get("route")
        template = getattr(route, "path", None) or self.routes.template(scope["path"], method)
        status, code = answer.status, scope["state"].get("problem_code")
        metrics_endpoint.record(method, template, status, seconds, code)
        level = logging.WARNING if status >= 500 else logging.INFO
        if access_log.isEnabledFor(level):
            fields: dict[str, Any] = {
                "method": method,
                "route": template,
                "path": clip(sent_path),
                "status": status,
                "duration_ms": round(seconds * 1000, 2),
            }
            if scope["query_string"]:
                fields["query"] = redact_query(scope["query_string"])
            if code is not None:
                fields["code"] = code
            actor = scope["state"].get("actor")
            if actor is not None:
                fields["actor"] = actor
            if self.traces and (trace_id := tracing.current_trace_id()) is not None:
                fields["trace_id"] = trace_id
            write_line(logging.getLevelName(level), "app.access", "request", fields)


# Served whatever the schema: the probes, metrics and the documentation.
_schema_free = path_rules.schema_free
