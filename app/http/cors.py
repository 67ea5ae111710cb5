"""CORS: which browser origins may call the API (CORS_ORIGINS), decided by Starlette's
CORSMiddleware.

Off by default (no CORS headers at all). Starlette's `CORSMiddleware` holds the rules: which
origin is allowed, which headers a response from one carries, and whether a preflight's
requested method and headers are allowed. The request path (app/http/request_path.py) asks it
and sends the answer itself rather than stacking it as a second ASGI layer: a preflight from an
allowed origin is answered before the API-key check (browsers send preflights without
credentials), with the request id and an access line like any request; a preflight asking for a
method or header the API does not allow is 400 `cors_not_allowed` (problem+json, not
Starlette's plain text). `CORS_ALLOW_HEADERS` adds request headers to those the contract
lists (case does not matter). A preflight from an origin that is not allowed is an OPTIONS
request like any other: it gets no CORS headers, so the browser refuses it.
"""

from collections.abc import Coroutine, Iterable
from typing import Any

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.types import Message, Receive, Scope, Send

from app.core.errors import ApiError

ALLOWED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
ALLOWED_HEADERS = (
    "Authorization",
    "X-API-Key",
    "Content-Type",
    "Idempotency-Key",
    "If-Match",
    "X-Request-ID",
)
EXPOSED_HEADERS = ("ETag", "Location", "X-Request-ID", "Idempotent-Replayed", "Retry-After")
PREFLIGHT_MAX_AGE = 600
RawHeaders = list[tuple[bytes, bytes]]
# A preflight's own answer carries no body: these of Starlette's are not sent.
_BODY_HEADERS = frozenset({b"content-length", b"content-type"})


async def _unused_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("the request path sends; CORSMiddleware only decides")


def _run(step: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine that never suspends (CORSMiddleware.send into a list) to its end."""
    try:
        step.send(None)
    except StopIteration:
        return
    raise AssertionError("CORSMiddleware.send suspended")


def cors_not_allowed(failures: str, headers: Iterable[str] = ALLOWED_HEADERS) -> ApiError:
    return ApiError(
        "cors_not_allowed",
        f"{failures}: the API allows the methods {', '.join(ALLOWED_METHODS)} and the headers "
        f"{', '.join(headers)}.",
    )


class Cors:
    def __init__(self, origins: Iterable[str], extra_headers: Iterable[str] = ()) -> None:
        # The contract's headers, then CORS_ALLOW_HEADERS' (a browser storefront's tracing
        # headers, say), each once.
        self.allowed_headers = list(ALLOWED_HEADERS)
        for header in extra_headers:
            if header.lower() not in {known.lower() for known in self.allowed_headers}:
                self.allowed_headers.append(header)
        self.rules = CORSMiddleware(
            _unused_app,
            allow_origins=list(origins),
            allow_methods=ALLOWED_METHODS,
            allow_headers=self.allowed_headers,
            expose_headers=EXPOSED_HEADERS,
            max_age=PREFLIGHT_MAX_AGE,
        )
        # The headers a response gets, by the request's origin: an allowed origin's own, and
        # one entry for all the others (None: no Origin header; b"": an origin not allowed).
        self._answers: dict[bytes | None, RawHeaders] = {
            None: self._simple_headers(None),
            b"": self._simple_headers(b"https://not-allowed.invalid"),
        }

    def allows(self, origin: bytes | None) -> bool:
        return origin is not None and self.rules.is_allowed_origin(origin.decode("latin-1"))

    def response_headers(self, origin: bytes | None) -> RawHeaders:
        """The CORS headers of any answer to a request from `origin` (Starlette's)."""
        key = origin if origin is None or self.allows(origin) else b""
        found = self._answers.get(key)
        if found is None:  # an allowed origin's first request (origins are a fixed list)
            found = self._answers[key] = self._simple_headers(origin)
        return found

    def preflight(self, scope: Scope) -> tuple[RawHeaders, ApiError | None]:
        """A preflight from an allowed origin: the headers of its answer, and the refusal
        when the requested method or headers are not allowed (None: answer 204)."""
        answer = self.rules.preflight_response(request_headers=Headers(scope=scope))
        headers = [(k, v) for k, v in answer.raw_headers if k not in _BODY_HEADERS]
        if answer.status_code == 200:
            return headers, None
        return headers, cors_not_allowed(bytes(answer.body).decode(), self.allowed_headers)

    def _simple_headers(self, origin: bytes | None) -> RawHeaders:
        sent: list[Message] = []

        async def capture(message: Message) -> None:
            sent.append(message)

        request = Headers(raw=[] if origin is None else [(b"origin", origin)])
        start: Message = {"type": "http.response.start", "status": 200, "headers": []}
        _run(self.rules.send(start, capture, request))
        return list(sent[0]["headers"])


def cors(origins: list[str], extra_headers: list[str] | None = None) -> Cors | None:
    return Cors(origins, extra_headers or ()) if origins else None
