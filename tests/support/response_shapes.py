"""Every JSON response the in-process service sends, checked against the model its route declares.

Routes return orjson bytes, so FastAPI's `response_model=` checks nothing at run time; this is
what keeps the views honest. `check_responses(client, app)` adds a response hook to a
TestClient (tests/support/serving.py does it for every API test, on both engines): each JSON
response of a route is validated against the route's model (`response_model`, or the model of
its `responses` entry for that status), and its objects must carry exactly their model's
fields in the model's order (no extra key, none missing: the contract's shapes). A problem
(application/problem+json) must be a `Problem` whose status and title are its code's in
app/core/problem_codes.py (a framework's unlisted error: its HTTP phrase).
"""

import functools
from http import HTTPStatus
from typing import Any

import httpx
import orjson
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter
from starlette.routing import Match

from app.core.errors import Problem
from app.core.problem_codes import PROBLEM_CODES

# JSON the service sends that no model describes, by path: the OpenAPI document itself.
WITHOUT_MODEL = frozenset({"/openapi.json"})
_TITLES = {
    entry.code: (status, entry.title) for status, codes in PROBLEM_CODES.items() for entry in codes
}


class ShapeError(AssertionError):
    """A response whose body is not its route's model."""


def route_of(app: FastAPI, method: str, path: str) -> APIRoute | None:
    # The request path answers every path with or without its trailing slash.
    scope = {"type": "http", "method": method, "path": path.rstrip("/") or "/", "root_path": ""}
    for route in app.router.routes:
        if isinstance(route, APIRoute) and route.matches(scope)[0] == Match.FULL:
            return route
    return None


def model_of(route: APIRoute, status: int) -> Any:
    """The type the route declares for a response of `status`."""
    declared = route.responses.get(status) or route.responses.get(str(status)) or {}
    if "model" in declared:
        return declared["model"]
    if 200 <= status < 300:
        return route.response_model
    return None


def same_fields(value: Any, body: Any, where: str) -> None:
    """`body` holds exactly the fields of each model inside `value`, in the model's order."""
    if isinstance(value, BaseModel):
        fields = list(type(value).model_fields)
        if not isinstance(body, dict) or list(body) != fields:
            shown = list(body) if isinstance(body, dict) else type(body).__name__
            raise ShapeError(f"{where}: keys {shown}, but {type(value).__name__} has {fields}")
        for field in fields:
            same_fields(getattr(value, field), body[field], f"{where}.{field}")
    elif isinstance(value, list | tuple):
        for index, (item, shown) in enumerate(zip(value, body, strict=True)):
            same_fields(item, shown, f"{where}[{index}]")
    elif isinstance(value, dict) and isinstance(body, dict):
        for key, item in value.items():
            same_fields(item, body[key], f"{where}.{key}")


@functools.cache
def _adapter(model: Any) -> TypeAdapter[Any]:
    return TypeAdapter(model)


def check(app: FastAPI, response: httpx.Response) -> None:
    """Raise ShapeError if the JSON `response` is not what its route declares."""
    response.read()
    kind = response.headers.get("content-type", "").split(";")[0].strip()
    if not response.content or kind not in ("application/json", "application/problem+json"):
        return
    method, path = response.request.method, response.request.url.path
    where = f"{method} {path} -> {response.status_code}"
    if kind == "application/problem+json":
        problem = Problem.model_validate_json(response.content)
        if problem.status != response.status_code:
            raise ShapeError(f"{where}: the problem says status {problem.status}")
        listed = _TITLES.get(problem.code)
        if listed is None:  # a framework's error: its status's HTTP phrase (ApiError.unlisted)
            listed = (problem.status, HTTPStatus(problem.status).phrase)
        elif path == "/readyz":  # a probe that is not ready says 503 whatever the code's status
            listed = (503, listed[1])
        if listed != (problem.status, problem.title):
            raise ShapeError(
                f"{where}: {problem.code} is {listed} in problem_codes.py, "
                f"sent as {(problem.status, problem.title)}"
            )
        return
    if path in WITHOUT_MODEL:
        return
    route = route_of(app, method, path)
    if route is None:
        raise ShapeError(f"{where}: JSON from no route of the app")
    model = model_of(route, response.status_code)
    if model is None:
        raise ShapeError(f"{where}: the route declares no model for this status")
    try:
        value = _adapter(model).validate_json(response.content)
    except ValueError as error:
        raise ShapeError(f"{where}: not a {model}: {error}") from None
    same_fields(value, orjson.loads(response.content), where)


def check_responses(client: httpx.Client, app: FastAPI) -> None:
    """Check every response `client` receives from `app` (a TestClient of it)."""
    client.event_hooks["response"].append(lambda response: check(app, response))
