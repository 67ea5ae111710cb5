"""API keys: with API_KEYS set, every call but the probes, the docs and the webhook needs one.

A key comes as `Authorization: Bearer <key>` or `X-API-Key: <key>`. It is compared, in constant
time, with every configured key (several while rotating), and is never logged. `/metrics`
needs a key too (Prometheus sends it with `authorization: {credentials_file: ...}`): it tells
order volumes, which are the business's own.

Pure ASGI middleware, so a request without a valid key is refused before routing, body parsing
or any database work, and unknown paths do not reveal which routes exist.
"""

import hashlib
import hmac
import logging
from collections.abc import Callable, Iterable
from typing import Any

from fastapi import FastAPI
from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import ApiError, problem_responses, send_problem

# Reachable without a key: probes, the docs and their assets, and the signed webhook.
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json", "/webhooks/payment"})
EXEMPT_PREFIXES = ("/docs", "/redoc", "/static-offline-docs")
BEARER_SCHEME = "ApiKeyBearer"
HEADER_SCHEME = "ApiKeyHeader"
log = logging.getLogger("app.security")


def is_exempt(path: str) -> bool:
    return path in EXEMPT_PATHS or any(
        path == prefix or path.startswith(prefix + "/") for prefix in EXEMPT_PREFIXES
    )


def _digest(key: bytes) -> bytes:
    # Comparing fixed-length digests hides the configured keys' lengths as well as their values.
    return hashlib.sha256(key).digest()


def _presented_keys(headers: Iterable[tuple[bytes, bytes]]) -> list[bytes]:
    keys = []
    for name, value in headers:
        if name == b"authorization":
            scheme, _, credentials = value.partition(b" ")
            if scheme.lower() == b"bearer" and credentials.strip():
                keys.append(credentials.strip())
        elif name == b"x-api-key" and value.strip():
            keys.append(value.strip())
    return keys


def unauthorized() -> ApiError:
    return ApiError(
        401,
        "unauthorized",
        "Unauthorized",
        "Send a valid API key as 'Authorization: Bearer <key>' or 'X-API-Key'.",
        headers={"WWW-Authenticate": "Bearer"},
    )


# Refuses every non-exempt request that does not carry one of the configured keys.
class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, keys: Iterable[SecretStr]) -> None:
        self.app = app
        self._digests = [_digest(key.get_secret_value().encode()) for key in keys]

    def _allows(self, headers: Iterable[tuple[bytes, bytes]]) -> bool:
        valid = False
        for presented in _presented_keys(headers):
            digest = _digest(presented)
            for known in self._digests:  # every key, every time: no early exit to time
                valid |= hmac.compare_digest(digest, known)
        return valid

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_exempt(scope["path"]) or self._allows(scope["headers"]):
            await self.app(scope, receive, send)
            return
        await send_problem(scope, send, unauthorized())


def install_api_keys(app: FastAPI, keys: list[SecretStr]) -> None:
    """Require a key when keys are configured; say at start-up that the API is open when not."""
    if keys:
        app.add_middleware(ApiKeyMiddleware, keys=keys)
        log.info("API keys required: %d key(s) configured", len(keys))
    else:
        log.warning("API_KEYS is not set: the API is open to anyone who can reach it")


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
