"""Which roles may make each call, declared once, beside each route.

A route says who may call it with `@allow(...)` under its `@router.<method>(...)` (admin may
always; name the others), or `@no_key` for the few a key does not guard (probes, the signed
webhook). The request path (app/http/request_path.py, through app/http/known_routes.py) refuses
a call outside the key's role with 403 `forbidden` right after the key check: before the body
is read, before idempotency and before any database work. The OpenAPI document shows each
operation's roles (`x-roles`, and a line of its description), and `role_table` prints them all,
the table docs/operations.md shows (tests/api/test_roles.py keeps the three in step and fails on
a route that declares nothing).
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from app.core.access import Role, set_actor
from app.core.errors import ApiError, problem_responses

F = TypeVar("F", bound=Callable[..., Any])
_ATTRIBUTE = "__access__"


# Who may make a call: the roles of the keys that may (admin always among them), or no key.
@dataclass(frozen=True)
class Access:
    roles: frozenset[Role]
    key_needed: bool = True

    def names(self) -> list[str]:
        """The roles in their declared order (admin first)."""
        return [role.value for role in Role if role in self.roles]


# What a route that declares nothing gets: admin only (a test fails on such a route).
UNDECLARED = Access(frozenset({Role.ADMIN}))


def allow(*roles: Role) -> Callable[[F], F]:
    """Declare the roles besides admin whose keys may make this call."""
    access = Access(frozenset({Role.ADMIN, *roles}))

    def declare(endpoint: F) -> F:
        setattr(endpoint, _ATTRIBUTE, access)
        return endpoint

    return declare


# For the calls only admin keys may make.
admin_only = allow()


def no_key(endpoint: F) -> F:
    """Declare a call that needs no API key (a probe, a webhook with its own signature)."""
    setattr(endpoint, _ATTRIBUTE, Access(frozenset(Role), key_needed=False))
    return endpoint


def act_as(request: Request, actor: str) -> None:
    """Name the actor of this request's changes and of its access line (a route no key guards,
    as the webhook, says who it acts for)."""
    request.scope["state"]["actor"] = actor
    set_actor(actor)


def declared(route: APIRoute) -> Access | None:
    """What a route declares (None: nothing)."""
    return getattr(route.endpoint, _ATTRIBUTE, None)


def forbidden(role: Role, access: Access) -> ApiError:
    required = access.names()
    return ApiError(
        "forbidden",
        f"A key with the role {role} may not make this call; the roles that may: "
        f"{', '.join(required)}.",
        role=role.value,
        required=required,
    )


def _operations(routes: Iterable[BaseRoute]) -> list[tuple[str, str, APIRoute]]:
    return [
        (method, route.path_format, route)
        for route in routes
        if isinstance(route, APIRoute) and route.include_in_schema
        for method in sorted(route.methods or ())
    ]


def role_table(routes: Iterable[BaseRoute]) -> str:
    """Every call and who may make it, as the Markdown table docs/operations.md shows."""
    lines = ["| call | " + " | ".join(Role) + " |", "|---|" + "---|" * len(Role)]
    for method, path, route in _operations(routes):
        access = declared(route) or UNDECLARED
        if access.key_needed:
            cells = ["yes" if role in access.roles else "" for role in Role]
        else:
            cells = ["no key needed", *[""] * (len(Role) - 1)]
        lines.append(f"| `{method} {path}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def document_roles(app: FastAPI) -> None:
    """Show each operation's roles in OpenAPI: `x-roles`, a line of its description, and its
    403. Call after the app's own `openapi` is installed: this wraps it."""
    generate: Callable[[], dict[str, Any]] = app.openapi
    forbidden_doc = {str(k): v for k, v in problem_responses(403).items()}

    def openapi() -> dict[str, Any]:
        schema = generate()
        paths = schema.get("paths", {})
        for method, path, route in _operations(app.routes):
            operation = paths.get(path, {}).get(method.lower())
            access = declared(route) or UNDECLARED
            if operation is None or not access.key_needed or "x-roles" in operation:
                continue
            operation["x-roles"] = access.names()
            line = f"**Roles**: {', '.join(access.names())}."
            description = operation.get("description")
            operation["description"] = f"{description}\n\n{line}" if description else line
            if len(access.roles) < len(Role):
                operation.setdefault("responses", {}).update(forbidden_doc)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
