"""Every problem `code` the service answers, by status: the one list that the OpenAPI document
(descriptions and examples), docs/api.md and the tests derive from. A new code goes here first."""

from dataclasses import dataclass, field
from typing import Any


# One code: the title the service sends with it, when it is sent, and an example detail and
# extra members, for the OpenAPI examples. `everywhere=False`: only the operations that name it
# (app/http/openapi.py) document it, as the webhook's own codes.
@dataclass(frozen=True)
class ProblemCode:
    code: str
    title: str
    when: str
    detail: str
    extra: dict[str, Any] = field(default_factory=dict)
    everywhere: bool = True


def _codes(*codes: ProblemCode) -> tuple[ProblemCode, ...]:
    return codes


PROBLEM_CODES: dict[int, tuple[ProblemCode, ...]] = {
    400: _codes(
        ProblemCode(
            "bad_request",
            "Bad request",
            "malformed JSON (duplicate object keys included), missing required header",
            "JSON decode error",
            {"errors": [{"loc": ["body", 8], "msg": "JSON decode error", "type": "json_invalid"}]},
        ),
        ProblemCode(
            "cors_not_allowed",
            "CORS request not allowed",
            "a CORS preflight from an allowed origin asks for a method or header the API does "
            "not allow (CORS_ORIGINS)",
            "Disallowed CORS method: the API allows the methods GET, HEAD, POST, PUT, PATCH, "
            "DELETE and the headers Authorization, X-API-Key, Content-Type, Idempotency-Key, "
            "If-Match, X-Request-ID.",
            everywhere=False,
        ),
    ),
    401: _codes(
        ProblemCode(
            "invalid_signature",
            "Invalid signature",
            "webhook signature missing, malformed, or wrong",
            "No signature matches the event id, timestamp and body.",
            everywhere=False,
        ),
        ProblemCode(
            "stale_timestamp",
            "Stale timestamp",
            "webhook timestamp outside the tolerance window",
            "The timestamp is 3600 s from the server's clock; at most 300 s is accepted.",
            everywhere=False,
        ),
        ProblemCode(
            "unauthorized",
            "Unauthorized",
            "API keys are configured and the call has no valid one; `WWW-Authenticate: Bearer`",
            "Send a valid API key as 'Authorization: Bearer <key>' or 'X-API-Key'.",
        ),
    ),
    403: _codes(
        ProblemCode(
            "forbidden",
            "Forbidden",
            "the API key is valid but its role may not make this call; carries `role`, `required`",
            "A key with the role storefront may not make this call; the roles that may: admin, "
            "fulfillment.",
            {"role": "storefront", "required": ["admin", "fulfillment"]},
        ),
    ),
    404: _codes(
        ProblemCode(
            "product_not_found",
            "Product not found",
            "unknown (or archived) product id; names the `product_id`",
            "Product 99 does not exist.",
            {"product_id": 99},
        ),
        ProblemCode(
            "order_not_found",
            "Order not found",
            "unknown order id; names the `order_id`",
            "Order 99 does not exist.",
            {"order_id": 99},
        ),
        ProblemCode(
            "not_found",
            "Not Found",
            "unknown route, or an unknown stock movement, event subscription or delivery",
            "No route matches GET /nope.",
        ),
    ),
    405: _codes(
        ProblemCode(
            "method_not_allowed",
            "Method Not Allowed",
            "the path does not take this method; `Allow` lists those it does",
            "Method Not Allowed",
        ),
    ),
    408: _codes(
        ProblemCode(
            "request_timeout",
            "Request timeout",
            "the request body did not arrive in time",
            "The request body did not arrive within 30 s.",
        ),
    ),
    409: _codes(
        ProblemCode(
            "sku_conflict",
            "SKU already in use",
            "SKU already used by a live product",
            "SKU 'MUG-001' is already used by another product.",
            {"sku": "MUG-001"},
        ),
        ProblemCode(
            "insufficient_stock",
            "Insufficient stock",
            "an order line asks for more than is in stock; `product_id`, `requested`, `available`",
            "Product 7 has 2 in stock; 5 requested.",
            {"product_id": 7, "requested": 5, "available": 2},
        ),
        ProblemCode(
            "insufficient_on_hand",
            "Insufficient units on hand",
            "a shipment needs more units than are on hand; `product_id`, `requested`, `on_hand`",
            "Product 7 has 1 unit(s) on hand; the shipment takes 3.",
            {"product_id": 7, "requested": 3, "on_hand": 1},
        ),
        ProblemCode(
            "exceeds_remaining",
            "Exceeds what remains",
            "a shipment or refund names more units of a line than remain to ship or refund; "
            "`product_id`, `requested`, `remaining`",
            "The order has 1 unit(s) of product 7 left to ship; 2 requested.",
            {"product_id": 7, "requested": 2, "remaining": 1},
        ),
        ProblemCode(
            "refund_exceeds_paid",
            "Refund exceeds what was paid",
            "a refund's amount is over what was paid and not yet refunded; `refundable`",
            "A refund of 50.00 is more than order 12's 39.98 paid and not yet refunded.",
            {"order_id": 12, "requested": "50.00", "refundable": "39.98"},
        ),
        ProblemCode(
            "not_paid",
            "Nothing paid",
            "a refund for an order with nothing paid",
            "Order 12 has nothing paid to refund.",
            {"order_id": 12},
        ),
        ProblemCode(
            "count_too_old",
            "Count too old",
            "a stock count taken before the product's newest count",
            "Product 7 was counted at 2026-12-08T10:00:00Z, after this count's "
            "2026-12-08T09:00:00Z: an older count cannot say what is on the shelf now.",
            {
                "product_id": 7,
                "counted_at": "2026-12-08T09:00:00Z",
                "newest_count_at": "2026-12-08T10:00:00Z",
            },
        ),
        ProblemCode(
            "invalid_status_transition",
            "Invalid status transition",
            "e.g. SHIPPED → PENDING; carries `from`, `to`, `allowed`",
            "An order in SHIPPED cannot move to PENDING.",
            {"from": "SHIPPED", "to": "PENDING", "allowed": []},
        ),
        ProblemCode(
            "idempotency_key_in_use",
            "Idempotency-Key in use",
            "a request with the same Idempotency-Key is still running",
            "A request with this Idempotency-Key is still being processed; retry shortly.",
            {"idempotency_key": "order-2026-0001"},
        ),
        ProblemCode(
            "delivery_not_failed",
            "Delivery not failed",
            "an event delivery sent again that is not `failed`; carries `delivery_id`, "
            "`delivery_status`",
            "Delivery 12 is delivered: only a failed delivery is sent again.",
            {"delivery_id": 12, "delivery_status": "delivered"},
        ),
    ),
    412: _codes(
        ProblemCode(
            "precondition_failed",
            "Precondition failed",
            "`If-Match` does not match the current ETag; `etag` is the current one",
            "If-Match does not match the product's current ETag.",
            {"etag": '"ceef60c5fc0a7367b3ea58c93e9d5779"'},
        ),
    ),
    413: _codes(
        ProblemCode(
            "payload_too_large",
            "Payload too large",
            "body over the limit (`MAX_BODY_BYTES`; the webhook: 64 KiB; an import: "
            "`IMPORT_MAX_BODY_BYTES` or 10,000 rows)",
            "The request body is over the limit of 1048576 bytes.",
            {"limit": 1048576},
        ),
    ),
    415: _codes(
        ProblemCode(
            "unsupported_media_type",
            "Unsupported media type",
            "an import body that is neither `text/csv` nor `application/x-ndjson`",
            "An import is text/csv or application/x-ndjson, not application/json.",
            {"supported": ["text/csv", "application/x-ndjson"]},
            everywhere=False,
        ),
    ),
    422: _codes(
        ProblemCode(
            "validation_error",
            "Validation failed",
            "body or query fails validation; carries `errors`",
            "1 field(s) failed validation.",
            {
                "errors": [
                    {
                        "loc": ["body", "price"],
                        "msg": "Input should be greater than 0",
                        "type": "greater_than",
                    }
                ]
            },
        ),
        ProblemCode(
            "import_invalid",
            "Import invalid",
            "an import with invalid rows; nothing was written; carries `errors` (`row`, `sku`, "
            "`loc`, `msg`)",
            "2 row(s) of the import are invalid; nothing was written.",
            {
                "errors": [
                    {
                        "row": 3,
                        "sku": "MUG-1",
                        "loc": ["price"],
                        "msg": "Input should be greater than 0",
                    },
                    {"row": 7, "sku": "MUG-1", "loc": ["sku"], "msg": "SKU also on row 3"},
                ]
            },
            everywhere=False,
        ),
        ProblemCode(
            "idempotency_key_reused",
            "Idempotency-Key reused",
            "same Idempotency-Key, different request body",
            "This Idempotency-Key was used with a different request body.",
            {"idempotency_key": "order-2026-0001"},
        ),
        ProblemCode(
            "amount_mismatch",
            "Amount mismatch",
            "a payment event's amount differs from the order's total",
            "The payment of 10.00 does not equal order 2's total of 39.98.",
            {"order_id": 2, "amount": "10.00", "total": "39.98"},
            everywhere=False,
        ),
        ProblemCode(
            "currency_mismatch",
            "Currency mismatch",
            "a currency other than the shop's",
            "The currency EUR is not the shop's; it sells in USD.",
            {"currency": "EUR", "shop_currency": "USD"},
            everywhere=False,
        ),
        ProblemCode(
            "invalid_cursor",
            "Invalid cursor",
            "`after` is not a cursor this list issued",
            "The cursor is not one this list issued.",
        ),
        ProblemCode(
            "url_not_allowed",
            "URL not allowed",
            "an event subscription URL that is not public http(s)",
            "The URL resolves to a private address.",
        ),
    ),
    431: _codes(
        ProblemCode(
            "headers_too_large",
            "Request header fields too large",
            "request headers over the limit",
            "The request headers are over the limit of 16384 bytes.",
        ),
    ),
    # nginx's status for a client that left: logged and counted, never read by the client.
    499: _codes(
        ProblemCode(
            "client_closed_request",
            "Client closed request",
            "the client disconnected before a change was committed: it was rolled back",
            "The client disconnected before the change was committed; nothing was changed.",
            everywhere=False,
        ),
    ),
    500: _codes(
        ProblemCode(
            "internal_error",
            "Internal server error",
            "an unexpected error, logged with the request id; never a traceback",
            "An unexpected error occurred; it has been logged with this request's id.",
        ),
    ),
    503: _codes(
        ProblemCode(
            "webhook_not_configured",
            "Webhook not configured",
            "no webhook secret set: the webhook fails closed",
            "No WEBHOOK_SECRET is set, so no delivery can be verified.",
            everywhere=False,
        ),
        ProblemCode(
            "database_unavailable",
            "Database unavailable",
            "the database cannot be reached (readiness, requests); `Retry-After`",
            "The database cannot be reached; try again shortly.",
        ),
        ProblemCode(
            "schema_out_of_date",
            "Schema out of date",
            "the database schema is not at the service's migration head (`./run.sh migrate`)",
            "The database schema is not at this version's head; run ./run.sh migrate.",
        ),
        ProblemCode(
            "overloaded",
            "Overloaded",
            "more work in flight than the instance takes, or queued past its deadline; "
            "`Retry-After`",
            "The service is at capacity; retry shortly.",
        ),
        ProblemCode(
            "database_read_only",
            "Database read-only",
            "the database refuses writes (read-only file or server)",
            "The database refuses writes.",
        ),
    ),
    507: _codes(
        ProblemCode(
            "insufficient_storage",
            "Insufficient storage",
            "the database's disk is full (`/readyz` answers it with 503, as every not-ready probe)",
            "The database's disk is full.",
        ),
    ),
}


def codes_of(status: int) -> tuple[ProblemCode, ...]:
    return PROBLEM_CODES.get(status, ())


# Each code's status and title: the one place they are written (ApiError looks them up).
_STATUS_AND_TITLE = {
    entry.code: (status, entry.title)
    for status, entries in PROBLEM_CODES.items()
    for entry in entries
}
assert len(_STATUS_AND_TITLE) == sum(map(len, PROBLEM_CODES.values())), "a code listed twice"


def status_and_title(code: str) -> tuple[int, str]:
    """The status and title a problem of `code` is sent with; ValueError for an unlisted code."""
    try:
        return _STATUS_AND_TITLE[code]
    except KeyError:
        raise ValueError(f"{code!r} is not a problem code of app/core/problem_codes.py") from None


def all_codes() -> set[str]:
    return {entry.code for entries in PROBLEM_CODES.values() for entry in entries}
