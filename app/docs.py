"""What Swagger UI and ReDoc show: metadata, tags, and the problem schema every error uses."""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.errors import Problem, problem_responses

TITLE = "Orders & Inventory API"
DESCRIPTION = """
Products, stock and orders for a shop, and the payment provider's webhook that marks orders paid.

* **Stock never oversells**: placing an order reserves every line's stock in one transaction,
  all or nothing, by conditional update.
* **Errors** are RFC 9457 problem details (`application/problem+json`) with a stable `code`.
* **Money** is exact: send `19.99` or `"19.99"`, receive `"19.99"`.
"""
TAGS = [
    {"name": "products", "description": "The catalog: create, list, read, update, archive."},
    {
        "name": "orders",
        "description": "Place orders (stock is reserved), move their status, "
        "cancel (stock is returned).",
    },
    {
        "name": "stock",
        "description": "Restock and write off with adjustments; each product's stock ledger.",
    },
    {"name": "webhooks", "description": "Signed payment events from the payment provider."},
    {
        "name": "events",
        "description": "What happened, for other systems: the event feed (cursor-paged, never "
        "misses an event) and push subscriptions with signed deliveries (docs/events.md).",
    },
    {"name": "operations", "description": "Health and readiness probes."},
]


def _declare_malformed_json(schema: dict[str, Any]) -> None:
    """Any operation that takes a JSON body may answer 400 `bad_request` to malformed JSON."""
    (bad_request,) = problem_responses(400).values()
    for operation in _operations(schema):
        if "requestBody" in operation:
            operation.setdefault("responses", {}).setdefault("400", bad_request)


def _operations(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        op
        for path in schema.get("paths", {}).values()
        for op in path.values()
        if isinstance(op, dict)
    ]


def install_openapi(app: FastAPI) -> None:
    """Generate the schema once, with the Problem schema that error responses refer to."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components["Problem"] = Problem.model_json_schema()
            _declare_malformed_json(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
