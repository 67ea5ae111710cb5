"""API keys: with API_KEYS set, every call but the probes, the docs and the webhook needs one.

A key comes as `Authorization: Bearer <key>` or `X-API-Key: <key>`: one credential per request.
The same key in both headers counts as one (Swagger UI's Authorize dialog sends both when both
boxes are filled); two different keys are refused, so a request cannot try many keys at once.
The key is compared, in constant time, with every configured key (several while rotating), and
is never logged. `/metrics` needs a key too (Prometheus sends it with
`authorization: {credentials_file: ...}`): it tells order volumes, which are the business's own.

The request path (app/http/request_path.py) checks the key before routing, body parsing or any
database work, so unknown paths do not reveal which routes exist. The matching key gives the
caller: its name (the actor of the changes it makes), its role (what it may call,
app/http/access.py) and its principal, a short id derived from the key's digest (never the
key), to which Idempotency-Keys are scoped.
"""

import hashlib
import hmac
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from app.core.access import NamedKey, Role
from app.core.errors import ApiError, problem_responses
from app.http import path_rules

# Reachable without a key: probes, the docs and their assets, and the signed webhook
# (app/http/path_rules.py, the one table).
EXEMPT_PATHS = path_rules.KEYLESS_PATHS
EXEMPT_PREFIXES = path_rules.KEYLESS_PREFIXES
BEARER_SCHEME = "ApiKeyBearer"
HEADER_SCHEME = "ApiKeyHeader"
CREDENTIAL_HEADERS = frozenset({b"authorization", b"x-api-key"})
# Stands for a credential that can match no key (a Basic header, an empty bearer).
_UNUSABLE = b""
log = logging.getLogger("app.security")


is_exempt = path_rules.keyless


def _digest(key: bytes) -> bytes:
    # Comparing fixed-length digests hides the configured keys' lengths as well as their values.
    return hashlib.sha256(key).digest()


def principal_of(digest: bytes) -> str:
    """A stable, short id of a key, safe to store and log: a hash of its digest."""
    return hashlib.sha256(b"principal:" + digest).hexdigest()[:16]


def credential(name: bytes, value: bytes) -> bytes:
    """The key a credential header carries (`_UNUSABLE` when it cannot carry one)."""
    if name == b"x-api-key":
        return value.strip()
    scheme, _, key = value.partition(b" ")
    return key.strip() if scheme.lower() == b"bearer" else _UNUSABLE


def unauthorized() -> ApiError:
    return ApiError(
        "unauthorized",
        "Send one valid API key as 'Authorization: Bearer <key>' or 'X-API-Key'.",
        headers={"WWW-Authenticate": "Bearer"},
    )


# Who a matched key says the caller is: its name, its role, and its principal.
@dataclass(frozen=True, slots=True)
class Caller:
    name: str
    role: Role
    principal: str


# The configured keys, as digests, and the caller each one stands for.
class ApiKeys:
    def __init__(self, keys: Iterable[NamedKey]) -> None:
        self._known = []
        for key in keys:
            digest = _digest(key.secret.encode())
            self._known.append((digest, Caller(key.name, key.role, principal_of(digest))))

    def authenticate(self, credentials: list[bytes]) -> Caller | None:
        """The caller of the one credential sent (the same key in both headers is one), or
        None: none, two different ones, or no match."""
        if not credentials or credentials[0] == _UNUSABLE:
            return None
        sent = credentials[0]
        for other in credentials[1:]:
            if other != sent:
                return None
        digest, found = _digest(sent), None
        for known, caller in self._known:  # every key, every time: no early exit to time
            if hmac.compare_digest(digest, known):
                found = caller
        return found


def api_keys(keys: list[NamedKey]) -> ApiKeys | None:
    """The key check when keys are configured; say at start-up that the API is open when not."""
    if keys:
        names = sorted({f"{key.name} ({key.role})" for key in keys})
        log.info("API keys required: %d key(s) configured: %s", len(keys), ", ".join(names))
        return ApiKeys(keys)
    log.warning("API_KEYS is not set: the API is open to anyone who can reach it")
    return None


def document_api_keys(app: FastAPI) -> None:
    """Declare both key forms in OpenAPI, so Swagger UI's Authorize button sends the key.

    Call after the app's own `openapi` is installed: this wraps it.
    """
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        if BEARER_SCHEME not in schemes:
            schemes[BEARER_SCHEME] = {
                "type": "http",
                "scheme": "bearer",
                "description": "An API key from API_KEYS.",
            }
            schemes[HEADER_SCHEME] = {
                "type": "apiKey",
                "in": "header",
                "name": "X-API-Key",
                "description": "The same key, in X-API-Key.",
            }
            _protect_operations(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _protect_operations(schema: dict[str, Any]) -> None:
    unauthorized_doc = {str(k): v for k, v in problem_responses(401).items()}
    for path, operations in schema.get("paths", {}).items():
        if is_exempt(path):
            continue
        for operation in operations.values():
            operation["security"] = [{BEARER_SCHEME: []}, {HEADER_SCHEME: []}]
            operation.setdefault("responses", {}).update(unauthorized_doc)
