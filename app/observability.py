"""Per request: metrics and one JSON log line. Plus the `/metrics` endpoint that exposes them.

Pure ASGI middleware (no BaseHTTPMiddleware): it runs on every request, so it only reads a
clock twice, looks up a cached label set and writes one log line.
"""

import logging
import re
import time
from typing import Any

from fastapi import APIRouter, Response
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import metrics
from app.logs import request_id_var

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The route label of requests that match no route, so scanners cannot grow the series.
UNMATCHED = "unmatched"
# A placed order's request whose body failed validation counts as a rejected order.
_ORDER_VALIDATION_CODES = frozenset({"validation_error", "bad_request"})
# Webhook refusals other than these two (counted where the signature is checked) are
# `rejected`; processed and duplicate deliveries are counted by the webhook route.
WEBHOOK_ROUTE = "/webhooks/payment"
_WEBHOOK_SIGNATURE_CODES = frozenset({"invalid_signature", "stale_timestamp"})
log = logging.getLogger("app.access")


def route_template(scope: Scope) -> str:
    """`/orders/{order_id}`, never `/orders/7`: the matched route, or the one that would match."""
    route = scope.get("route")
    if route is not None and getattr(route, "path", None):
        return str(route.path)
    # Answered before routing (401, 413) or by no route: match the API's documented paths.
    path = scope["path"]
    for pattern, template in _documented_paths(scope.get("app")):
        if pattern.match(path):
            return template
    return UNMATCHED


def _documented_paths(app: Any) -> list[tuple[re.Pattern[str], str]]:
    """The OpenAPI paths as regular expressions, compiled once per app."""
    if app is None:
        return []
    compiled = getattr(app.state, "documented_path_patterns", None)
    if compiled is None:
        compiled = [(compile_path(path)[0], path) for path in app.openapi().get("paths", {})]
        app.state.documented_path_patterns = compiled
    return compiled


# Times each request, counts it by method, route template and status, and logs it.
class RequestMetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        token = request_id_var.set(scope.get("state", {}).get("request_id"))
        try:
            await self.app(scope, receive, send_with_status)
        finally:
            _record(scope, status, time.perf_counter() - started)
            request_id_var.reset(token)


def _record(scope: Scope, status: int, seconds: float) -> None:
    method = scope["method"] if scope["method"] in KNOWN_METHODS else "OTHER"
    route = route_template(scope)
    metrics.request_observed(method, route, status, seconds)
    code = scope.get("state", {}).get("problem_code")
    _count_refusal(method, route, status, code)
    level = logging.WARNING if status >= 500 else logging.INFO
    if log.isEnabledFor(level):
        fields: dict[str, Any] = {
            "method": method,
            "route": route,
            "path": scope["path"],
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
        }
        if code is not None:
            fields["code"] = code
        log.log(level, "request", extra=fields)


def _count_refusal(method: str, route: str, status: int, code: str | None) -> None:
    """Refusals only the HTTP layer sees: invalid order bodies, refused webhook deliveries."""
    if method != "POST" or status < 400:
        return
    if route == "/orders" and code in _ORDER_VALIDATION_CODES:
        metrics.order_rejected("validation")
    elif route == WEBHOOK_ROUTE and code not in _WEBHOOK_SIGNATURE_CODES:
        metrics.webhook_delivery("rejected")


router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    summary="Prometheus metrics (text format), totals over all of the instance's workers",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics_endpoint() -> Response:
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
