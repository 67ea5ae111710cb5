"""The API's routes as the request path sees them: path pattern, template, declared query names.

Built once at start-up from the routers. The request path uses it for what it decides before
routing: the route label of a request refused early (a 401 or 503 is still counted under
`/orders/{order_id}`, never under `/orders/7`), and the unknown query parameters a route
refuses (422, as unknown body fields are), which costs nothing for a request without a query.
"""

import re
from collections.abc import Iterable
from urllib.parse import unquote_plus

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from app.core.errors import ApiError

# The route label of requests that match no route, so scanners cannot grow the series.
UNMATCHED = "unmatched"


def _query_names(dependant: Dependant) -> frozenset[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return frozenset(names)


# One route: its compiled path, methods, template and the query parameters it declares.
class _Entry:
    __slots__ = ("pattern", "methods", "template", "query")

    def __init__(self, route: APIRoute) -> None:
        self.pattern: re.Pattern[str] = route.path_regex
        self.methods = frozenset(route.methods or ())
        self.template = route.path
        self.query = _query_names(route.dependant)


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

    def unknown_query(self, path: str, method: str, query: bytes) -> ApiError | None:
        """422 naming every query parameter the route does not declare, or None."""
        entry = self._find(path, method)
        if entry is None or method not in entry.methods:
            return None  # 404 or 405 follows
        unknown = []
        for part in query.decode("latin-1").split("&"):
            name = unquote_plus(part.partition("=")[0])
            if part and name not in entry.query and name not in unknown:
                unknown.append(name)
        if not unknown:
            return None
        errors = [
            {"loc": ["query", name], "msg": "Unknown query parameter", "type": "extra_forbidden"}
            for name in unknown
        ]
        return ApiError(
            "validation_error",
            f"{len(errors)} field(s) failed validation.",
            errors=errors,
        )
