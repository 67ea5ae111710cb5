"""The schema check: is the database at the migration head this code was written for?

A service started on an unmigrated or older database would otherwise answer 500s and 503s
that say nothing of the cause. So the revision Alembic recorded is compared with the head of
`migrations/` at start-up; until they match, the service logs why and answers 503
`schema_out_of_date` (app/db/readiness.py keeps re-checking in the background, never per request).
"""

from functools import cache
from pathlib import Path

from alembic.script import ScriptDirectory

from app.core.errors import ApiError

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
MIGRATE_COMMAND = "./run.sh migrate"


@cache
def heads() -> frozenset[str]:
    """The head revision(s) of the migrations shipped with this code."""
    return frozenset(ScriptDirectory(str(MIGRATIONS)).get_heads())


def explain(revisions: frozenset[str]) -> str | None:
    """Why the database's schema is not the one this code needs, or None when it is."""
    expected = heads()
    if revisions == expected:
        return None
    want = ", ".join(sorted(expected))
    if not revisions:
        found = "has no schema (no alembic_version table)"
    else:
        found = f"is at revision {', '.join(sorted(revisions))}"
    return (
        f"the database {found}; this service needs revision {want}: run `{MIGRATE_COMMAND}` "
        f"(alembic upgrade head). Until then API calls answer 503 schema_out_of_date."
    )


def schema_out_of_date() -> ApiError:
    return ApiError(
        "schema_out_of_date",
        f"The database schema is not at this service's migration head; run `{MIGRATE_COMMAND}`.",
        headers={"Retry-After": "10"},
    )
