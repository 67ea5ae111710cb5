"""Schemathesis against the service's own /openapi.json, on a live server.

Every operation gets up to EXAMPLES generated requests (valid and invalid ones); every answer
must be no 5xx, a declared status code, of the declared content type (problem+json included)
and conform to the declared schema. Bounded: a few hundred requests per operation at most.
"""

import itertools
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.generation import GenerationMode

from app.core.config import Settings
from app.main import create_app
from tests.conftest import CLIENT_API_KEY, CLIENT_STRIPE_WEBHOOK_SECRET, CLIENT_WEBHOOK_SECRET
from tests.support.databases import ENGINES, database_url
from tests.support.live_server import LiveServer

AUTH = {"Authorization": f"Bearer {CLIENT_API_KEY}"}
FUZZ_URL = "http://127.0.0.1:9/fuzzed"
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "100"))
pytestmark = pytest.mark.live


@pytest.fixture(scope="module", params=ENGINES)
def fuzzed_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """One server per engine for the whole module: the fuzzer's data piles up in it."""
    tmp_path: Path = tmp_path_factory.mktemp(f"schemathesis-{request.param}")
    with database_url(request.param, tmp_path) as url:
        # As deployed: with API keys, so schemathesis also checks that a wrong key is refused
        # (its `ignored_auth` check, once the schema declares the keys).
        env = {
            "WEBHOOK_SECRET": CLIENT_WEBHOOK_SECRET,
            "STRIPE_WEBHOOK_SECRET": CLIENT_STRIPE_WEBHOOK_SECRET,
            "API_KEYS": CLIENT_API_KEY,
            "EVENT_ALLOW_PRIVATE_URLS": "true",  # FUZZ_URL only; see loopback_subscriptions_only
        }
        with LiveServer(url, env=env, log_path=tmp_path / "server.log") as server:
            yield server


def _own_openapi() -> dict[str, Any]:
    """The service's OpenAPI document, built in-process so pytest can list its operations.

    (schemathesis' lazy `from_fixture` loader does not work with pytest 9.)
    `test_live_server_serves_the_schema_that_is_fuzzed` checks the live server serves the same.
    """
    settings_ = Settings(
        _env_file=None, app_env="test", database_url="sqlite://", api_keys=CLIENT_API_KEY
    )
    return create_app(settings_).openapi()


# A schema-valid request may still fail a precondition no schema can state: a random If-Match
# is 412, like an unknown id is 404 or a taken SKU is 409 (both already expected).
CONFIG = schemathesis.config.SchemathesisConfig.from_dict(
    {
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": ["2XX", "401", "403", "404", "409", "412"]
            }
        },
    }
)
OPENAPI = _own_openapi()


def _without_cursors(document: dict[str, Any]) -> dict[str, Any]:
    """The document minus the lists' `after` parameter: a cursor is valid only if a list issued
    it, which no schema can say (a made-up one is 422 invalid_cursor by design; the cursor
    paths are tested in test_input_faults, test_orders_api and test_catalog). A subscription's
    `url`, created or changed, may only be FUZZ_URL (see `loopback_subscriptions_only`)."""
    fuzzed = json.loads(json.dumps(document))
    for body in ("SubscriptionCreate", "SubscriptionUpdate"):
        subscription = fuzzed["components"]["schemas"][body]["properties"]
        subscription["url"] = {"type": "string", "enum": [FUZZ_URL]}
    for operations in fuzzed["paths"].values():
        for operation in operations.values():
            if isinstance(operation, dict) and "parameters" in operation:
                operation["parameters"] = [
                    p for p in operation["parameters"] if p.get("name") != "after"
                ]
    return fuzzed


schema = schemathesis.openapi.from_dict(_without_cursors(OPENAPI), config=CONFIG)


@schema.hook("map_case").apply_to(method="POST", path="/event-subscriptions")
@schema.hook("map_case").apply_to(method="PATCH", path="/event-subscriptions/{subscription_id}")
def loopback_subscriptions_only(_context: Any, case: Any) -> Any:
    """A subscription resolves its URL and then sends events (and test pings) to it: whatever
    the fuzzer makes of the body, the only URL it ever sends is FUZZ_URL (loopback, where
    nothing listens; the fuzzed server accepts it with EVENT_ALLOW_PRIVATE_URLS). No DNS query,
    no other address."""
    if isinstance(case.body, dict) and "url" in case.body:
        # A case meant to be invalid stays invalid (its URL is not a URL: refused before any
        # look-up), so that the test client's own valid key cannot make it a valid one.
        meta = case.meta
        negative = meta is not None and meta.generation.mode is GenerationMode.NEGATIVE
        case.body = {**case.body, "url": "not a url" if negative else FUZZ_URL}
    return case


_fresh_keys = itertools.count(1)


@schema.hook("map_case")
def one_body_per_idempotency_key(_context: Any, case: Any) -> Any:
    """The same Idempotency-Key sent again with another body is 422 `idempotency_key_reused` by
    design (tested in test_idempotency), which no schema can say: a generated key the schema
    allows (1 to 255 characters) is made unique to its request, still within the limit. A key
    outside it is left as generated, for the checks that it is refused."""
    key = case.headers.get("Idempotency-Key") if case.headers else None
    if isinstance(key, str) and 1 <= len(key) <= 245:
        case.headers["Idempotency-Key"] = f"{next(_fresh_keys)}-{key}"
    return case


@schema.hook("map_case").apply_to(method="POST", path="/orders")
def the_shops_currency(_context: Any, case: Any) -> Any:
    """An order's `currency`, when sent, must be the shop's (USD here), else 422
    `currency_mismatch` by design (tested in test_currency); the schema can say only that it is
    three letters. A generated one of three letters becomes the shop's, in the case generated;
    anything else is left as generated, for the checks that it is refused."""
    currency = case.body.get("currency") if isinstance(case.body, dict) else None
    if (
        isinstance(currency, str)
        and len(currency) == 3
        and currency.isascii()
        and currency.isalpha()
    ):
        case.body = {**case.body, "currency": "usd" if currency.islower() else "USD"}
    return case


@schema.hook("filter_body").apply_to(method="POST", path="/orders")
def each_product_once(_context: Any, body: Any) -> bool:
    """JSON Schema cannot say "each product on one line at most"; such orders are 422 by design
    (tested in test_orders), so the fuzzer does not send them as valid ones."""
    items = body.get("items") if isinstance(body, dict) else None
    if not isinstance(items, list):
        return True
    ids = [line.get("product_id") for line in items if isinstance(line, dict)]
    # 448 and 448.0 are the same product; anything else is compared as its JSON text.
    keys = {i if type(i) in (int, float) else json.dumps(i, sort_keys=True) for i in ids}
    return len(keys) == len(ids)


def _one_quantity(case: Any) -> Any:
    """`stock` and `on_hand` are two ways to set one quantity: both at once is 422 by design
    (tested in test_products_api), which the schema does not say. A valid case keeps one."""
    meta = case.meta
    positive = meta is None or meta.generation.mode is not GenerationMode.NEGATIVE
    if positive and isinstance(case.body, dict) and {"stock", "on_hand"} <= case.body.keys():
        case.body = {k: v for k, v in case.body.items() if k != "stock"}
    return case


@schema.hook("map_case").apply_to(method="POST", path="/products")
def one_quantity_created(_context: Any, case: Any) -> Any:
    return _one_quantity(case)


@schema.hook("map_case").apply_to(method="PUT", path="/products/{product_id}")
def one_quantity_put(_context: Any, case: Any) -> Any:
    return _one_quantity(case)


@schema.hook("map_case").apply_to(method="PATCH", path="/products/{product_id}")
def one_quantity_patched(_context: Any, case: Any) -> Any:
    return _one_quantity(case)


@schema.hook("map_case").apply_to(method="POST", path="/products/import")
def a_catalog_file(_context: Any, case: Any) -> Any:
    """An import's body is a file whose rows the service reads (a header with `sku`, a name
    and a price for a new SKU: import_invalid otherwise, tested in test_catalog_api), which a
    schema of `string` cannot say: a valid case sends a small valid file."""
    meta = case.meta
    if meta is not None and meta.generation.mode is GenerationMode.NEGATIVE:
        # Any bytes are a `string`: a file the service cannot read is refused when applied
        # (import_invalid), but a dry run reports it (200, by design). An invalid case is
        # applied, unless its `dry_run` is itself the invalid part.
        if case.query and str(case.query.get("dry_run")).lower() in ("true", "1"):
            case.query = {**case.query, "dry_run": "false"}
        return case
    if case.media_type == "application/x-ndjson":
        case.body = '{"sku": "FUZZ-1", "name": "Fuzzed", "price": "1.00", "on_hand": 1}\n'
    else:
        case.body = "sku,name,price,on_hand\nFUZZ-1,Fuzzed,1.00,1\n"
    return case


@schemathesis.serializer("application/x-ndjson")
def ndjson(_context: Any, value: Any) -> bytes:
    """A catalog import in NDJSON: a generated string is the file as it is; anything else is
    written as one JSON line."""
    return value.encode() if isinstance(value, str) else (json.dumps(value) + "\n").encode()


@schema.hook("map_case").apply_to(method="POST", path="/products/{product_id}/stock-counts")
def counted_now(_context: Any, case: Any) -> Any:
    """A count's `counted_at` must lie within the last 7 days, relative to the server's clock,
    which no schema can say (tested in test_stock_counts_api): the fuzzer's counts are taken
    now."""
    if isinstance(case.body, dict):
        case.body = {k: v for k, v in case.body.items() if k != "counted_at"}
    return case


@schema.hook("filter_body").apply_to(method="POST", path="/orders")
def no_discount(_context: Any, body: Any) -> bool:
    """A discount larger than the lines and other charges makes a total below 0, 422 by design
    (tested in test_order_money_api); the prices are the catalog's, which the schema cannot
    know, so the fuzzer's orders carry no discount."""
    charges = body.get("charges") if isinstance(body, dict) else None
    return not (
        isinstance(charges, list)
        and any(isinstance(c, dict) and c.get("kind") == "discount" for c in charges)
    )


@schema.hook("map_case").apply_to(method="POST", path="/orders/{order_id}/shipments")
def ship_what_remains(_context: Any, case: Any) -> Any:
    """Which products an order holds, and how many remain, are the order's (422 and 409 by
    design, tested in test_shipments_api): the fuzzer ships whatever remains."""
    if isinstance(case.body, dict):
        case.body = {k: v for k, v in case.body.items() if k != "items"}
    return case


@schema.hook("map_case").apply_to(method="POST", path="/orders/{order_id}/refunds")
def refund_an_amount(_context: Any, case: Any) -> Any:
    """A refund's items must be the order's lines (422 by design, tested in
    test_refunds_api), and one with neither amount nor items is 422: the fuzzer refunds an
    amount."""
    if isinstance(case.body, dict):
        body = {k: v for k, v in case.body.items() if k != "items"}
        body["amount"] = "1.00"
        case.body = body
    return case


@schema.hook("map_case").apply_to(
    method="POST", path="/event-subscriptions/{subscription_id}/rotate-secret"
)
def whole_seconds(_context: Any, case: Any) -> Any:
    """`expire_old_after_seconds` is a count of whole seconds; a JSON number with a fraction
    (5.5) is 422 by design, which the schema's `integer` lets through as 5.0 and the like."""
    if isinstance(case.body, dict) and not isinstance(
        case.body.get("expire_old_after_seconds", 0), int
    ):
        case.body = {k: v for k, v in case.body.items() if k != "expire_old_after_seconds"}
    return case


def test_live_server_serves_the_schema_that_is_fuzzed(fuzzed_server: LiveServer) -> None:
    served = httpx.get(f"{fuzzed_server.base_url}/openapi.json", timeout=10)
    assert served.status_code == 200
    assert served.json() == OPENAPI


@schema.parametrize()
# In CI the examples are the same every run (a gate must not flicker); on a laptop each run
# explores new ones.
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
    derandomize=os.environ.get("CI") == "true",
)
def test_every_operation_conforms_to_its_schema(
    case: schemathesis.Case, fuzzed_server: LiveServer
) -> None:
    case.call_and_validate(base_url=fuzzed_server.base_url, timeout=15, headers=AUTH)
