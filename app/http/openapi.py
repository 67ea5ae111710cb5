"""What Swagger UI, ReDoc and client generators read: metadata, operation ids (the routes' own,
declared in app/routers/), the problem schema every error uses with an example of each code, and
the /redoc page."""

import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from app.core.errors import PROBLEM_JSON, Problem, problem_doc, problem_responses

TITLE = "Orders & Inventory API"
DESCRIPTION = """
Products, stock and orders for a shop, and the payment provider's webhook that marks orders paid.

* **Stock never oversells**: placing an order reserves every line's stock in one transaction,
  all or nothing, by conditional update.
* **Errors** are RFC 9457 problem details (`application/problem+json`) with a stable `code`.
* **Money** is exact: send `19.99` or `"19.99"`, receive `"19.99"`.
"""


# Operation ids: each route declares its own (`operation_id=` in app/routers/), the names a
# client generator gives its functions; a route that declares none gets the id `_derived_id`
# makes from its method and path. The test of the document fails on any id that changes or
# repeats.
_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}

# The problem codes an operation can answer, where a status's codes are more than it can meet
# (every other response lists every code of its status that applies everywhere).
_PRODUCT = {404: ["product_not_found"]}
_ORDER = {404: ["order_not_found"], 409: ["invalid_status_transition"]}
OPERATION_CODES: dict[str, dict[int, list[str]]] = {
    "products-create": {409: ["sku_conflict"], 422: ["validation_error"]},
    "products-get": _PRODUCT,
    "products-update": {**_PRODUCT, 409: ["sku_conflict"], 422: ["validation_error"]},
    "products-patch": {**_PRODUCT, 409: ["sku_conflict"], 422: ["validation_error"]},
    "products-archive": _PRODUCT,
    "orders-create": {
        **_PRODUCT,
        409: ["insufficient_stock", "idempotency_key_in_use"],
        422: ["validation_error", "idempotency_key_reused", "currency_mismatch"],
    },
    "products-import": {
        409: ["sku_conflict", "idempotency_key_in_use"],
        412: ["precondition_failed"],
        413: ["payload_too_large"],
        415: ["unsupported_media_type"],
        422: ["validation_error", "import_invalid", "idempotency_key_reused"],
    },
    "orders-get": _ORDER,
    "orders-update": {**_ORDER, 422: ["validation_error"]},
    "orders-patch": {**_ORDER, 422: ["validation_error"]},
    "orders-cancel": _ORDER,
    "webhooks-payment": {
        401: ["invalid_signature", "stale_timestamp"],
        404: ["order_not_found"],
        409: ["invalid_status_transition"],
        422: ["validation_error", "amount_mismatch", "currency_mismatch"],
        503: ["webhook_not_configured", "database_unavailable", "schema_out_of_date"],
    },
    "webhooks-stripe": {
        401: ["invalid_signature", "stale_timestamp"],
        409: ["invalid_status_transition"],
        422: ["validation_error", "amount_mismatch", "currency_mismatch"],
        503: ["webhook_not_configured", "database_unavailable", "schema_out_of_date"],
    },
}
# Any call that reaches the database may meet these, whatever the operation.
_UNAVAILABLE = 503


def _template(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path.rstrip("/") or "/")


def _derived_id(method: str, path: str) -> str:
    """`GET /foo/{}/bar`: `foo-bar-list`; `GET /foo/{}`: `foo-get`; `POST /foo`: `foo-create`."""
    parts = [p for p in path.strip("/").split("/") if p and p != "{}"]
    if method == "GET":
        verb = "get" if path.endswith("{}") else "list"
    else:
        verb = _VERBS.get(method, method.lower())
    return "-".join([*(re.sub(r"[^a-z0-9]+", "-", p.lower()) for p in parts), verb])


def operation_id(method: str, path: str) -> str:
    """The id of an operation whose route declares none."""
    return _derived_id(method.upper(), _template(path))


def _set_operation_ids(schema: dict[str, Any], routes: list[BaseRoute]) -> None:
    declared = {
        (method, route.path): route.operation_id or (route.openapi_extra or {})["operationId"]
        for route in routes
        if isinstance(route, APIRoute)
        and (route.operation_id or "operationId" in (route.openapi_extra or {}))
        for method in route.methods or ()
    }
    for path, method, operation in _operations_by_path(schema):
        operation["operationId"] = declared.get((method, path)) or operation_id(method, path)


def _document_problems(schema: dict[str, Any]) -> None:
    """Every problem response lists the codes this operation can answer, with an example each;
    every operation but the liveness probe declares the 503s of an unavailable database."""
    for path, _method, operation in _operations_by_path(schema):
        responses = operation.setdefault("responses", {})
        if path != "/healthz":
            responses.setdefault(str(_UNAVAILABLE), problem_doc(_UNAVAILABLE))
        narrowed = OPERATION_CODES.get(operation["operationId"], {})
        for status, response in responses.items():
            if PROBLEM_JSON not in response.get("content", {}):
                continue
            doc = problem_doc(int(status), narrowed.get(int(status)))
            for example in doc["content"][PROBLEM_JSON].get("examples", {}).values():
                example["value"]["instance"] = re.sub(r"\{[^}]*\}", "7", path)
            response.update(doc)


def _operations_by_path(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method.upper(), op)
        for path, item in schema.get("paths", {}).items()
        for method, op in item.items()
        if isinstance(op, dict)
    ]


def _declare_malformed_json(schema: dict[str, Any]) -> None:
    """Any operation that takes a JSON body may answer 400 `bad_request` to malformed JSON."""
    (bad_request,) = problem_responses(400).values()
    for _path, _method, operation in _operations_by_path(schema):
        if "requestBody" in operation:
            operation.setdefault("responses", {}).setdefault("400", bad_request)


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
            _set_operation_ids(schema, app.routes)
            _document_problems(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


# What /redoc may load: only what the service serves (ReDoc's own script, the document), never
# a third party. Its bundle shows Redocly's logo from Redocly's CDN in the footer: the browser
# refuses that image (ReDoc then leaves it out), so reading the docs tells nobody.
REDOC_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'"
)


def install_redoc(app: FastAPI, static_url: str = "/static-offline-docs") -> None:
    """/redoc from the service's own copy of ReDoc, under a policy that keeps it on the host."""

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{static_url}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{static_url}/favicon.png",
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = REDOC_POLICY
        return page
