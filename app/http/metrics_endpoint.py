"""Per request: the metrics the request path records (app/http/request_path.py), and `/metrics`."""

from fastapi import APIRouter, Request, Response

from app import products
from app.core import metrics
from app.core.access import Role
from app.db.connect import database_of
from app.http.access import allow
from app.tables import PaymentProvider

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# A placed order's request whose body failed validation counts as a rejected order.
_ORDER_VALIDATION_CODES = frozenset({"validation_error", "bad_request"})
# Webhook refusals other than these two (counted where the signature is checked) are
# `rejected`; processed, duplicate and ignored deliveries are counted by the webhook routes.
# Each webhook's route, and the provider its deliveries are counted under.
WEBHOOK_ROUTES = {
    "/webhooks/payment": PaymentProvider.PAYMENT,
    "/webhooks/stripe": PaymentProvider.STRIPE,
}
_WEBHOOK_SIGNATURE_CODES = frozenset({"invalid_signature", "stale_timestamp"})


def record(method: str, route: str, status: int, seconds: float, code: str | None) -> None:
    """Count and time one answered request by method, route template and status."""
    metrics.request_observed(method, route, status, seconds)
    if method == "POST" and status >= 400:
        _count_refusal(route, code)


def _count_refusal(route: str, code: str | None) -> None:
    """Refusals only the HTTP layer sees: invalid order bodies, refused webhook deliveries."""
    if route == "/orders" and code in _ORDER_VALIDATION_CODES:
        metrics.order_rejected("validation")
    elif route in WEBHOOK_ROUTES and code not in _WEBHOOK_SIGNATURE_CODES:
        metrics.webhook_delivery("rejected", WEBHOOK_ROUTES[route])


router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    operation_id="metrics-get",
    summary="Prometheus metrics (text format), totals over all of the instance's workers",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
@allow(Role.READONLY)
async def metrics_endpoint(request: Request) -> Response:
    # A count over the products: `scan` keeps it off the event loop on SQLite.
    below = await database_of(request).scan(products.count_below_threshold)
    body, content_type = metrics.render(below)
    return Response(body, media_type=content_type)
