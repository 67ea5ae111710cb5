"""A single resource's answer with its ETag, and `304 Not Modified` for a copy still current.

    return tagged_response(request, view)                # GET /orders/{id}, /products/{id}, ...

The body is serialized once and the ETag is that body's digest (app/core/etags.py), so the tag
names exactly the bytes sent. On a GET (and so a HEAD) whose `If-None-Match` names that tag (or
`*`, or a list holding it) the answer is 304 with the ETag and no body. Any route that returns
one resource gets both with that one line; writes answer the same way (a 200 or 201 with the
new ETag, for the client's next `If-Match`).
"""

from typing import Any

import orjson
from fastapi import Request, Response

from app.core.etags import etag_of, none_match
from app.http.json_payloads import json_bytes_response

_CONDITIONAL_METHODS = frozenset({"GET", "HEAD"})


def tagged_response(
    request: Request, view: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """`view`'s JSON with its ETag; 304 with the ETag alone when the client's copy is it."""
    body = orjson.dumps(view)
    tag = etag_of(body)
    if (
        status_code == 200
        and request.method in _CONDITIONAL_METHODS
        and none_match(request.headers.get("if-none-match"), tag)
    ):
        return Response(status_code=304, headers={"ETag": tag})
    return json_bytes_response(body, status_code, {**(headers or {}), "ETag": tag})


def etag_doc(what: str) -> dict[Any, Any]:
    """OpenAPI for a single resource's GET: its ETag, and the 304 a current copy gets."""
    return {
        200: {
            "headers": {
                "ETag": {
                    "schema": {"type": "string"},
                    "description": f"A strong validator of the {what}'s bytes.",
                }
            }
        },
        304: {
            "description": f"Not Modified: `If-None-Match` names the {what}'s current ETag "
            "(or is `*`). No body; the ETag again."
        },
    }
