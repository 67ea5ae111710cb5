"""The OpenAPI document as a client generator wants it: stable, unique operation ids; every
problem response lists its codes with an example of each; formats and patterns on timestamps and
money. And the one list of problem codes covers every code the service raises."""

import re
from typing import Any

import pytest
from pydantic import TypeAdapter

from app.core.config import Settings
from app.core.errors import PROBLEM_JSON, Problem
from app.core.problem_codes import PROBLEM_CODES, all_codes
from app.http import openapi
from app.main import create_app
from tests.support.live_server import ROOT

# Clients are generated from these names: changing one breaks every such client's code. The
# reference is docs/api.md's table of every call, which a reader sees; the routers declare them.
CALL_ROW = re.compile(
    r"^\| `(?P<method>[A-Z]+)` \| `(?P<path>[^`]+)` \| `(?P<id>[^`]+)` \| (?P<tag>\w+) \|$"
)


def _documented_calls() -> dict[tuple[str, str], tuple[str, str]]:
    text = (ROOT / "docs" / "api.md").read_text()
    rows = [m for m in map(CALL_ROW.match, text.splitlines()) if m]
    return {(m["method"], m["path"]): (m["id"], m["tag"]) for m in rows}


STABLE_IDS = {key: operation_id for key, (operation_id, _tag) in _documented_calls().items()}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    settings = Settings(_env_file=None, app_env="test", database_url="sqlite://", api_keys="k" * 16)
    return create_app(settings).openapi()


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def test_operation_ids_are_stable_and_unique(document: dict[str, Any]) -> None:
    ids = {(method, path): op["operationId"] for method, path, op in _operations(document)}
    assert len(STABLE_IDS) >= 16, "docs/api.md's table of every call was not found"
    for key, expected in STABLE_IDS.items():
        assert ids.get(key) == expected, key
    assert len(set(ids.values())) == len(ids), "operation ids must be unique"
    for operation_id in ids.values():
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", operation_id), operation_id


def test_docs_list_every_call_the_routers_declare_with_its_id_and_tag(
    document: dict[str, Any],
) -> None:
    declared = {
        (method, path): (op["operationId"], op["tags"][0])
        for method, path, op in _operations(document)
    }
    assert _documented_calls() == declared


def test_an_operation_missing_from_the_table_gets_a_derived_id() -> None:
    assert openapi.operation_id("GET", "/gift-cards") == "gift-cards-list"
    assert openapi.operation_id("GET", "/gift-cards/{card_id}") == "gift-cards-get"
    assert openapi.operation_id("POST", "/gift-cards/{card_id}/redemptions/") == (
        "gift-cards-redemptions-create"
    )
    # A renamed path parameter or a trailing slash keeps the tabled id.
    assert openapi.operation_id("GET", "/products/{id}/") == "products-get"


def test_every_problem_response_lists_its_codes_with_an_example_of_each(
    document: dict[str, Any],
) -> None:
    problem = TypeAdapter(Problem)
    seen: set[str] = set()
    for method, path, operation in _operations(document):
        for status, response in operation["responses"].items():
            if int(status) < 400:
                continue
            media = response["content"][PROBLEM_JSON]
            examples = media["examples"]
            assert examples, (method, path, status)
            allowed = {entry.code for entry in PROBLEM_CODES[int(status)]}
            for code, example in examples.items():
                value = example["value"]
                assert value["code"] == code and code in allowed, (method, path, status, code)
                assert value["status"] == int(status)
                assert f"`{code}`" in response["description"]
                problem.validate_python(value)
                seen.add(code)
    # The operations' own codes are all documented somewhere.
    assert {"sku_conflict", "insufficient_stock", "invalid_signature", "unauthorized"} <= seen


def test_webhook_and_api_codes_stay_where_they_belong(document: dict[str, Any]) -> None:
    webhook = document["paths"]["/webhooks/payment"]["post"]["responses"]
    products = document["paths"]["/products"]["post"]["responses"]
    assert set(webhook["401"]["content"][PROBLEM_JSON]["examples"]) == {
        "invalid_signature",
        "stale_timestamp",
    }
    assert set(products["401"]["content"][PROBLEM_JSON]["examples"]) == {"unauthorized"}
    assert set(products["409"]["content"][PROBLEM_JSON]["examples"]) == {"sku_conflict"}


def _response_properties(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each property of the schemas that responses use, as `Schema.property`."""
    schemas = document["components"]["schemas"]
    return {
        f"{name}.{prop}": spec
        for name, schema in schemas.items()
        if name.endswith(("Public", "Public-Output"))
        for prop, spec in schema.get("properties", {}).items()
    }


def test_timestamps_and_money_carry_their_format_and_pattern(document: dict[str, Any]) -> None:
    properties = _response_properties(document)
    timestamps = {k: v for k, v in properties.items() if k.endswith(("_at", ".created_at"))}
    money = {
        k: v for k, v in properties.items() if k.split(".")[1] in ("price", "total", "unit_price")
    }
    assert timestamps and money
    for name, spec in timestamps.items():
        if "anyOf" in spec:  # nullable, as expires_at
            spec = next(s for s in spec["anyOf"] if s.get("type") == "string")
        assert spec.get("format") == "date-time", name
    for name, spec in money.items():
        assert spec["type"] == "string" and re.fullmatch(spec["pattern"], "19.99"), name
        assert not re.fullmatch(spec["pattern"], "19.9"), name


def test_every_code_the_service_raises_is_in_the_one_list() -> None:
    raised = set()
    for source in (ROOT / "app").rglob("*.py"):
        text = source.read_text()
        raised |= set(re.findall(r"ApiError(?:\.not_ready)?\(\s*\"([a-z_]+)\"", text))
        raised |= set(re.findall(r"problem_body\(\s*\w+,\s*\d{3},\s*\"([a-z_]+)\"", text))
    assert raised, "the scan should find the service's codes"
    assert raised <= all_codes(), raised - all_codes()


def test_redoc_page_lets_the_browser_load_only_from_the_service() -> None:
    from fastapi.testclient import TestClient

    settings = Settings(_env_file=None, app_env="test", database_url="sqlite://")
    page = TestClient(create_app(settings)).get("/redoc")
    assert page.status_code == 200
    assert "/static-offline-docs/redoc.standalone.js" in page.text
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "img-src 'self' data:" in policy
