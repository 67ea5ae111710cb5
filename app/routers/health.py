"""Liveness and readiness probes for load balancers and orchestrators."""

from fastapi import APIRouter
from sqlalchemy import text

from app.database import SessionDep
from app.errors import problem_responses

router = APIRouter(tags=["operations"])


# `async def`: it touches no database, so it answers even when every worker thread is busy.
@router.get("/healthz", summary="Liveness: the process is running")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: the database answers",
    responses=problem_responses(503),
)
def readyz(session: SessionDep) -> dict[str, str]:
    session.execute(text("SELECT 1"))
    return {"status": "ok", "database": "ok"}
