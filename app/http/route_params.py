"""Path and query parameters shared by the resource routers."""

from typing import Annotated

from fastapi import Path, Query

from app.core.errors import ApiError
from app.core.formats import MAX_ID

ResourceId = Annotated[int, Path(ge=1, le=MAX_ID, description="The resource's id.")]
Limit = Annotated[int, Query(ge=1, le=100, description="Page size, 1–100.")]
Offset = Annotated[
    int | None, Query(ge=0, le=MAX_ID, description="Items to skip (offset paging; default 0).")
]
# A cursor's length is checked where it is decoded (app/core/cursors.py), not here: an empty or an
# overlong one is, like any other that no list issued, 422 `invalid_cursor`.
After = Annotated[
    str | None,
    Query(
        description="Cursor paging: the `next` of an earlier page. No count is made, so "
        "`total` and `offset` are null. Not with `offset`.",
    ),
]


def paging(offset: int | None, after: str | None) -> tuple[int | None, str | None]:
    """Offset paging by default; `after` and `offset` at once is a 422."""
    if after is not None and offset is not None:
        raise ApiError(
            "validation_error",
            "1 field(s) failed validation.",
            errors=[
                {
                    "loc": ["query", "after"],
                    "msg": "`after` (cursor paging) and `offset` (offset paging) cannot be "
                    "combined",
                    "type": "value_error",
                }
            ],
        )
    return (offset if after is None else None), after
