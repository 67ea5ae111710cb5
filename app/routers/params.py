"""Path and query parameters shared by the resource routers."""

from typing import Annotated

from fastapi import Path, Query

from app.types import MAX_ID

ResourceId = Annotated[int, Path(ge=1, le=MAX_ID, description="The resource's id.")]
Limit = Annotated[int, Query(ge=1, le=100, description="Page size, 1–100.")]
Offset = Annotated[int, Query(ge=0, le=MAX_ID, description="Items to skip.")]
