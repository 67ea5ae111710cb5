"""Liveness and readiness probes for load balancers and orchestrators."""

from fastapi import APIRouter

from app.database import DatabaseDep
from app.errors import problem_responses

router = APIRouter(tags=["operations"])


# It touches no database, so it answers even when every database thread is busy.
@router.get("/healthz", summary="Liveness: the process is running")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: the database answers",
    responses=problem_responses(503),
)
async def readyz(database: DatabaseDep) -> dict[str, str]:
    await database.ping()
    return {"status": "ok", "database": "ok"}
