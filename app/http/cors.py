"""CORS: which browser origins may call the API (CORS_ORIGINS), and the headers that say so.

Off by default (no CORS headers at all). A preflight from an allowed origin is answered by the
request path before the API-key check: browsers send preflights without credentials. Written
here rather than with Starlette's CORSMiddleware, whose refusals are plain text rather than the
contract's problem+json and which would be a second layer on every request.
"""

from collections.abc import Iterable

ALLOWED_METHODS = b"GET, HEAD, POST, PUT, PATCH, DELETE"
ALLOWED_HEADERS = b"Authorization, X-API-Key, Content-Type, Idempotency-Key, If-Match, X-Request-ID"
EXPOSED_HEADERS = b"ETag, Location, X-Request-ID, Idempotent-Replayed, Retry-After"
PREFLIGHT_MAX_AGE = b"600"
Headers = list[tuple[bytes, bytes]]


# The configured origins, and the CORS headers of a response to a request from one of them.
class Cors:
    def __init__(self, origins: Iterable[str]) -> None:
        origins = list(origins)
        self.any_origin = "*" in origins
        self.origins = frozenset(o.encode("latin-1") for o in origins if o != "*")
        # With a list, the answer depends on the Origin header: caches must know.
        self._vary: Headers = [] if self.any_origin else [(b"vary", b"Origin")]

    def allows(self, origin: bytes | None) -> bool:
        return origin is not None and (self.any_origin or origin in self.origins)

    def response_headers(self, origin: bytes | None) -> Headers:
        if not self.allows(origin):
            return self._vary
        assert origin is not None
        allowed = b"*" if self.any_origin else origin
        return [
            (b"access-control-allow-origin", allowed),
            (b"access-control-expose-headers", EXPOSED_HEADERS),
            *self._vary,
        ]

    def preflight_headers(self) -> Headers:
        """What a preflight's answer adds to `response_headers`."""
        return [
            (b"access-control-allow-methods", ALLOWED_METHODS),
            (b"access-control-allow-headers", ALLOWED_HEADERS),
            (b"access-control-max-age", PREFLIGHT_MAX_AGE),
        ]


def cors(origins: list[str]) -> Cors | None:
    return Cors(origins) if origins else None
