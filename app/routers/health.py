"""Liveness and readiness probes for load balancers and orchestrators.

Both are answered ahead of the admission queue (app/http/request_path.py): /healthz by the request
path itself, before routing; /readyz from the background check's last result (app/db/readiness.py),
so neither waits behind the requests of a busy instance.
"""

from fastapi import APIRouter, Request

from app.core.errors import ApiError, problem_responses
from app.http.access import no_key

# This router's OpenAPI tag (app/routers/__init__.py lists them in the docs' order).
TAG = {"name": "operations", "description": "Health and readiness probes."}
router = APIRouter(tags=[TAG["name"]])


# The probes' ids go in `openapi_extra`: with `operation_id=`, FastAPI would also rename their
# response schemas ("Response Healthz Healthz Get"), which generated clients already name.


# Documents the probe; the request path answers it before this route is reached.
@router.get(
    "/healthz",
    openapi_extra={"operationId": "health-live"},
    summary="Liveness: the process is running",
)
@no_key
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    openapi_extra={"operationId": "health-ready"},
    summary="Readiness: the database answers, at the schema's head, and can write",
    responses=problem_responses(503),
)
@no_key
async def readyz(request: Request) -> dict[str, str]:
    problem: ApiError | None = await request.app.state.readiness.problem()
    if problem is not None:
        raise problem
    return {"status": "ok", "database": "ok"}
