"""The API's routes as the request path sees them: path pattern, template, declared query names.

Built once at start-up from the routers. The request path uses it for what it decides before
routing: the route label of a request refused early (a 401 or 503 is still counted under
`/orders/{order_id}`, never under `/orders/7`), and the unknown query parameters a route
refuses (422, as unknown body fields are), which costs nothing for a request without a query;
and the roles a route allows (app/http/access.py), so a key outside them is refused (403)
before any work; an admin key is never looked up.
"""

import re
import typing
from collections.abc import Iterable
from urllib.parse import unquote_plus

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from app.core.access import Role
from app.core.errors import ApiError
from app.http.access import UNDECLARED, declared, forbidden

# The route label of requests that match no route, so scanners cannot grow the series.
UNMATCHED = "unmatched"


def _query_names(dependant: Dependant) -> frozenset[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return frozenset(names)


def _is_list(annotation: object) -> bool:
    """Whether a query parameter takes several values (`list[EventType] | None`, say)."""
    if typing.get_origin(annotation) in (list, tuple, set, frozenset):
        return True
    return any(_is_list(arg) for arg in typing.get_args(annotation))


def _list_names(dependant: Dependant) -> frozenset[str]:
    names = {p.alias for p in dependant.query_params if _is_list(p.field_info.annotation)}
    for sub in dependant.dependencies:
        names |= _list_names(sub)
    return frozenset(names)


# One route: its compiled path, methods, template, the query parameters and roles it declares.
class _Entry:
    __slots__ = ("pattern", "methods", "template", "query", "lists", "access")

    def __init__(self, route: APIRoute) -> None:
        self.pattern: re.Pattern[str] = route.path_regex
        self.methods = frozenset(route.methods or ())
        self.template = route.path
        self.query = _query_names(route.dependant)
        self.lists = _list_names(route.dependant)
        self.access = declared(route) or UNDECLARED


class RouteTable:
    def __init__(self, routes: Iterable[BaseRoute]) -> None:
        self._entries = [_Entry(route) for route in routes if isinstance(route, APIRoute)]

    def _find(self, path: str, method: str) -> _Entry | None:
        fallback = None
        for entry in self._entries:
            if entry.pattern.match(path):
                if method in entry.methods:
                    return entry
                fallback = fallback or entry
        return fallback

    def template(self, path: str, method: str) -> str:
        entry = self._find(path, method)
        return entry.template if entry is not None else UNMATCHED

    def forbidden(self, path: str, method: str, role: Role) -> ApiError | None:
        """403 when a key of `role` may not make this call, or None (a 404 or 405 follows for
        a call that matches no route)."""
        entry = self._find(path, method)
        if entry is None or method not in entry.methods or role in entry.access.roles:
            return None
        return forbidden(role, entry.access)

    def unknown_query(self, path: str, method: str, query: bytes) -> ApiError | None:
        """422 naming every query parameter the route does not declare, and every one-value
        parameter given more than once (`?status=PAID&status=SHIPPED` must not silently list
        one of them), or None."""
        entry = self._find(path, method)
        if entry is None or method not in entry.methods:
            return None  # 404 or 405 follows
        unknown: list[str] = []
        seen: set[str] = set()
        repeated: list[str] = []
        for part in query.decode("latin-1").split("&"):
            if not part:
                continue
            name = unquote_plus(part.partition("=")[0])
            if name not in entry.query:
                if name not in unknown:
                    unknown.append(name)
            elif name in seen and name not in entry.lists and name not in repeated:
                repeated.append(name)
            seen.add(name)
        if not unknown and not repeated:
            return None
        errors = [
            {"loc": ["query", name], "msg": "Unknown query parameter", "type": "extra_forbidden"}
            for name in unknown
        ] + [
            {"loc": ["query", name], "msg": "Given more than once", "type": "repeated"}
            for name in repeated
        ]
        return ApiError(
            "validation_error",
            f"{len(errors)} field(s) failed validation.",
            errors=errors,
        )
