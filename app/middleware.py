"""Request ids on every response, and the last line of defence for unexpected errors.

Written as plain ASGI middleware: Starlette's BaseHTTPMiddleware adds a task and a stream
copy to every request, which a service this small pays for on every call.
"""

import json
import logging
import re
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import PROBLEM_JSON, problem_body

REQUEST_ID_HEADER = b"x-request-id"
_VALID_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._-]{1,128}$")
log = logging.getLogger("app.requests")


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER and _VALID_REQUEST_ID.match(value):
            return value.decode("ascii")
    return uuid.uuid4().hex


# Tags each request with an id (the client's, when valid) and turns a crash into a 500 problem.
class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        id_header = (b"x-request-id", request_id.encode("ascii"))
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), id_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error", extra={"request_id": request_id})
            if not started:
                await _send_internal_error(scope, send_with_id)


async def _send_internal_error(scope: Scope, send: Any) -> None:
    body = problem_body(
        scope,
        500,
        "internal_error",
        "Internal server error",
        "An unexpected error occurred; it has been logged with this request's id.",
    )
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
