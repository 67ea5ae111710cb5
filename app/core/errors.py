"""One error shape for every failure: RFC 9457 problem details with a stable `code`."""

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import Scope, Send

from app.core import problem_codes

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("app.errors")


# The problem+json body every 4xx and 5xx carries; extra members give details.
class Problem(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    code: str
    instance: str | None = None
    request_id: str | None = None


# The one exception routers and rules raise for a failure a client should see.
class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status, self.code, self.title, self.detail = status, code, title, detail
        self.headers = headers or {}
        self.extra = extra


def problem_body(
    scope: Mapping[str, Any], status: int, code: str, title: str, detail: str | None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail is not None:
        body["detail"] = detail
    body["code"] = code
    body["instance"] = scope.get("path")
    body["request_id"] = scope.get("state", {}).get("request_id")
    body.update(extra)
    return body


def problem_response(request: Request, error: ApiError) -> JSONResponse:
    # For the access log and metrics (app/http/metrics_endpoint.py).
    request.state.problem_code = error.code
    body = problem_body(
        request.scope, error.status, error.code, error.title, error.detail, **error.extra
    )
    return JSONResponse(
        body, status_code=error.status, headers=error.headers, media_type=PROBLEM_JSON
    )


async def send_problem(scope: Scope, send: Send, error: ApiError) -> None:
    """Answer with `error` from pure ASGI middleware, which runs outside the handlers above."""
    scope.setdefault("state", {})["problem_code"] = error.code
    payload = json.dumps(
        problem_body(scope, error.status, error.code, error.title, error.detail, **error.extra)
    ).encode()
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(payload)).encode()),
    ]
    headers += [
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in error.headers.items()
    ]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def _on_api_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ApiError)
    return problem_response(request, error)


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE")


def _allowed_methods(request: Request) -> str:
    """Every method the path supports; Starlette's own 405 names only one route's methods."""
    routes = request.app.router.routes
    return ", ".join(
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    )


def _on_http_exception(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    headers = dict(error.headers or {})
    if error.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    phrase = HTTPStatus(error.status_code).phrase
    code = {404: "not_found", 405: "method_not_allowed"}.get(
        error.status_code, phrase.lower().replace(" ", "_").replace("-", "_")
    )
    detail = error.detail if error.detail != phrase else None
    if error.status_code == 404 and detail is None:
        detail = f"No route matches {request.method} {request.url.path}."
    return problem_response(
        request, ApiError(error.status_code, code, phrase, detail, headers=headers)
    )


def _is_bad_request(errors: Sequence[Mapping[str, Any]]) -> bool:
    """Malformed JSON and missing required headers are 400, not 422 (the contract)."""
    return any(
        e["type"] == "json_invalid" or (e["loc"][:1] == ("header",) and e["type"] == "missing")
        for e in errors
    )


def _on_validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in error.errors()]
    if _is_bad_request(error.errors()):
        problem = ApiError(400, "bad_request", "Bad request", errors[0]["msg"], errors=errors)
    else:
        problem = ApiError(
            422,
            "validation_error",
            "Validation failed",
            f"{len(errors)} field(s) failed validation.",
            errors=errors,
        )
    return problem_response(request, problem)


# The one 503 for a database that cannot be reached (requests, the seam and /readyz).
def database_unavailable(
    detail: str = "The database cannot be reached; try again shortly.",
) -> ApiError:
    return ApiError(
        503,
        "database_unavailable",
        "Database unavailable",
        detail,
        headers={"Retry-After": "1"},
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(RequestValidationError, _on_validation_error)


def problem_doc(status: int, codes: Iterable[str] | None = None) -> dict[str, Any]:
    """The OpenAPI response for `status`: the problem schema, the codes it may carry (`codes`,
    or every code of the status that applies everywhere) and an example of each."""
    entries = [
        entry
        for entry in problem_codes.codes_of(status)
        if (entry.code in codes if codes is not None else entry.everywhere)
    ]
    lines = [f"- `{entry.code}`: {entry.when}" for entry in entries]
    examples = {
        entry.code: {
            "summary": entry.code,
            "value": {
                "type": "about:blank",
                "title": entry.title,
                "status": status,
                "detail": entry.detail,
                "code": entry.code,
                "request_id": "4be0c0c5d1a24e0b9a3f6c0e2b7d9f15",
                **entry.extra,
            },
        }
        for entry in entries
    }
    media: dict[str, Any] = {"schema": {"$ref": "#/components/schemas/Problem"}}
    if examples:
        media["examples"] = examples
    return {
        "description": "\n".join([HTTPStatus(status).phrase, "", *lines]).strip(),
        "content": {PROBLEM_JSON: media},
    }


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries declaring the problem schema for the given statuses."""
    return {status: problem_doc(status) for status in statuses}
