"""The paths the request path treats apart, each listed once with what it is spared.

In: a request's path. Out: whether it needs no API key (`keyless`), is answered ahead of the
admission queue (`unqueued`), or is served whatever the database schema (`schema_free`).
app/http/api_keys.py, app/http/request_path.py and the OpenAPI document's security read this
table; no other module lists a path for these rules.
"""

from dataclasses import dataclass


# What a path is spared: the API key, the admission queue, the schema check.
@dataclass(frozen=True)
class Apart:
    keyless: bool = False
    unqueued: bool = False
    schema_free: bool = False
    large_body: bool = False  # IMPORT_MAX_BODY_BYTES instead of MAX_BODY_BYTES


# The probes: answered from the process, whatever else is wrong.
_PROBE = Apart(keyless=True, unqueued=True, schema_free=True)
# The documentation and its assets.
_DOCS = Apart(keyless=True, schema_free=True)

PATHS: dict[str, Apart] = {
    "/healthz": _PROBE,
    "/readyz": _PROBE,
    # Metrics from memory; a scraper holds a key as any client does.
    "/metrics": Apart(unqueued=True, schema_free=True),
    "/openapi.json": _DOCS,
    # Signed by the payment provider (or Stripe): its signature is its credential.
    "/webhooks/payment": Apart(keyless=True),
    "/webhooks/stripe": Apart(keyless=True),
    # A whole catalog in one body (app/routers/catalog.py).
    "/products/import": Apart(large_body=True),
}
# Every path at or under these.
PREFIXES: dict[str, Apart] = {
    "/docs": _DOCS,
    "/redoc": _DOCS,
    "/static-offline-docs": _DOCS,
}


def _paths(rule: str) -> frozenset[str]:
    return frozenset(path for path, apart in PATHS.items() if getattr(apart, rule))


def _prefixes(rule: str) -> tuple[str, ...]:
    return tuple(prefix for prefix, apart in PREFIXES.items() if getattr(apart, rule))


KEYLESS_PATHS, KEYLESS_PREFIXES = _paths("keyless"), _prefixes("keyless")
UNQUEUED_PATHS = _paths("unqueued")
if _prefixes("unqueued"):
    raise ValueError("the admission queue is skipped by exact paths only")
SCHEMA_FREE_PATHS, SCHEMA_FREE_PREFIXES = _paths("schema_free"), _prefixes("schema_free")
LARGE_BODY_PATHS = _paths("large_body")


def _under(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in prefixes)


def keyless(path: str) -> bool:
    return path in KEYLESS_PATHS or _under(path, KEYLESS_PREFIXES)


def unqueued(path: str) -> bool:
    return path in UNQUEUED_PATHS


def schema_free(path: str) -> bool:
    return path in SCHEMA_FREE_PATHS or _under(path, SCHEMA_FREE_PREFIXES)
