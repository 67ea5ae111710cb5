"""Strong ETags of what a client is sent, and the two conditions that read them.

A single resource's ETag is a digest of the exact bytes of its JSON (`etag_of`), so it changes
whenever any byte a client sees does. `If-None-Match` (a cache revalidating) is answered by
app/http/conditional.py; `If-Match` (a write that must not overwrite a change it has not seen)
is checked by the rule, inside the write's transaction, against the representation it computes
there (`require_match`): two writes sent with the same ETag cannot both pass.
"""

import hashlib
from typing import Any

import orjson

from app.core.errors import ApiError


def etag_of(body: bytes) -> str:
    """A strong validator of a representation: changes whenever any byte a client sees does."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def etag(view: Any) -> str:
    """The ETag of `view` as a response sends it (orjson's bytes, as json_response writes)."""
    return etag_of(orjson.dumps(view))


def _tags(header: str) -> set[str]:
    return {tag.strip() for tag in header.split(",")}


def none_match(header: str | None, current: str) -> bool:
    """Whether `If-None-Match: header` names `current` (or `*`): then the client's copy is
    current. Weak comparison, as RFC 9110 says for this header: `W/"x"` names `"x"`."""
    if header is None:
        return False
    tags = {tag.removeprefix("W/") for tag in _tags(header)}
    return "*" in tags or current in tags


def if_match_allows(header: str | None, current: str) -> bool:
    """Whether a write sent with `If-Match: header` may apply to a resource whose ETag is
    `current`: no header, `*`, or a list naming it (strong comparison: a weak tag never
    matches)."""
    if header is None:
        return True
    tags = _tags(header)
    return "*" in tags or current in tags


def precondition_failed(what: str, current: str) -> ApiError:
    return ApiError(
        "precondition_failed",
        f"If-Match does not match the {what}'s current ETag.",
        etag=current,
    )


def require_match(header: str | None, view: Any, what: str) -> None:
    """412 `precondition_failed` (carrying the current `etag`) unless `If-Match: header`
    allows a write to the resource that `view` shows. Call it inside the write's transaction,
    with `view` read after the row is held (PostgreSQL) or in SQLite's writer turn."""
    if header is None:
        return
    current = etag(view)
    if not if_match_allows(header, current):
        raise precondition_failed(what, current)
