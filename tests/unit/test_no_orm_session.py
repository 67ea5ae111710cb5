"""No route and no dependency takes an ORM session: the request path runs its units of work
through `Database` (plain rows, SQL built once), never through a SQLAlchemy `Session`."""

import importlib
import pkgutil
import typing
from collections.abc import Callable
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sqlmodel import Session

from app import routers
from app.db.connect import get_database


def _nodes(dependant: Dependant) -> list[Dependant]:
    return [dependant] + [node for sub in dependant.dependencies for node in _nodes(sub)]


def _routes() -> list[APIRoute]:
    routes = []
    for module in pkgutil.iter_modules(routers.__path__):
        router = getattr(importlib.import_module(f"app.routers.{module.name}"), "router", None)
        routes += [route for route in getattr(router, "routes", []) if isinstance(route, APIRoute)]
    return routes


def _takes_a_session(call: Callable[..., Any]) -> bool:
    hints = typing.get_type_hints(call)
    return any(isinstance(hint, type) and issubclass(hint, Session) for hint in hints.values())


def test_no_route_or_dependency_takes_an_orm_session() -> None:
    routes = _routes()
    # The hot routes take `request` and `database_of(request)`; the others `DatabaseDep`.
    database_users = [
        route
        for route in routes
        if any(node.call is get_database for node in _nodes(route.dependant))
    ]
    assert len(database_users) >= 5, "the walk over the routes' dependencies found too few"
    assert len(routes) > 20, "the walk over the routers found too few routes"
    offenders = [
        f"{sorted(route.methods)} {route.path}: {node.call.__qualname__}"
        for route in routes
        for node in _nodes(route.dependant)
        if node.call and _takes_a_session(node.call)
    ]
    assert offenders == [], "an ORM session in a route: run a unit through `Database` instead"


def test_the_check_spots_a_dependency_that_takes_a_session() -> None:
    def readyz(session: Session) -> None: ...

    assert _takes_a_session(readyz)
    assert not _takes_a_session(get_database)
