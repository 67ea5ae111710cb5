"""One error shape for every failure: RFC 9457 problem details with a stable `code`."""

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from types import MappingProxyType
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


# The one exception routers and rules raise for a failure a client should see: its `code`, whose
# status and title come from app/core/problem_codes.py (an unlisted code raises ValueError), a
# detail and extra members. Built once, never changed: a variant is a new error.
class ApiError(Exception):
    def __init__(
        self,
        code: str,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        status, title = problem_codes.status_and_title(code)
        self._build(status, code, title, detail, headers, extra)

    @classmethod
    def not_ready(cls, code: str, detail: str | None = None) -> "ApiError":
        """`/readyz`'s answer for the problem `code`: 503 whatever the code's own status (a
        probe's status says "not ready"), with the code's title."""
        _, title = problem_codes.status_and_title(code)
        error = cls.__new__(cls)
        error._build(503, code, title, detail, None, {})
        return error

    @classmethod
    def unlisted(
        cls,
        status: int,
        detail: str | None = None,
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> "ApiError":
        """An error that is not the service's own (a framework's HTTP error, a test's): titled
        by its status's HTTP phrase, its code by default the phrase in snake case
        (`unsupported_media_type`). The service's own errors are listed and built by code."""
        phrase = HTTPStatus(status).phrase
        code = code or phrase.lower().replace(" ", "_").replace("-", "_")
        error = cls.__new__(cls)
        error._build(status, code, phrase, detail, headers, {})
        return error

    def _build(
        self,
        status: int,
        code: str,
        title: str,
        detail: str | None,
        headers: Mapping[str, str] | None,
        extra: dict[str, Any],
    ) -> None:
        Exception.__init__(self, detail or title)
        for name, value in (
            ("status", status),
            ("code", code),
            ("title", title),
            ("detail", detail),
            ("headers", MappingProxyType(dict(headers or {}))),
            ("extra", MappingProxyType(extra)),
        ):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("__"):  # what raising sets: __traceback__, __cause__, __context__
            super().__setattr__(name, value)
            return
        raise AttributeError(f"an ApiError is not changed once built (tried to set {name})")

    status: int
    code: str
    title: str
    detail: str | None
    headers: Mapping[str, str]
    extra: Mapping[str, Any]


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
    detail = error.detail if error.detail != phrase else None
    if error.status_code == 404 and detail is None:
        detail = f"No route matches {request.method} {request.url.path}."
    code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code)
    problem = (
        ApiError(code, detail, headers=headers)
        if code is not None
        else ApiError.unlisted(error.status_code, detail, headers=headers)
    )
    return problem_response(request, problem)


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
        problem = ApiError("bad_request", errors[0]["msg"], errors=errors)
    else:
        problem = ApiError(
            "validation_error",
            f"{len(errors)} field(s) failed validation.",
            errors=errors,
        )
    return problem_response(request, problem)


# The one 503 for a database that cannot be reached (requests, the seam and /readyz).
def database_unavailable(
    detail: str = "The database cannot be reached; try again shortly.",
) -> ApiError:
    return ApiError(
        "database_unavailable",
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
