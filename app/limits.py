"""Request body size limit: refuse oversized bodies (413) before they are read whole.

A declared Content-Length over the limit is refused before the app runs. A body without one
(chunked) is counted as it streams in; past the limit the read fails, whatever the app then
tries to answer is dropped, and the client gets the 413. Pure ASGI middleware.
"""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import ApiError, send_problem


class BodyTooLarge(Exception):
    """Raised from `receive` once a streamed body passes the limit."""


def payload_too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "payload_too_large",
        "Payload too large",
        f"The request body is over the limit of {limit} bytes.",
        headers={"Connection": "close"},
        limit=limit,
    )


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


# Refuses request bodies over `max_bytes` with 413 payload_too_large.
class BodySizeLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            await send_problem(scope, send, payload_too_large(self.max_bytes))
        elif declared is not None:
            # The server delivers no more than Content-Length bytes: nothing left to count.
            await self.app(scope, receive, send)
        else:
            await self._counting(scope, receive, send)

    async def _counting(self, scope: Scope, receive: Receive, send: Send) -> None:
        received, exceeded, started = 0, False, False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # the app's answer to its failed read is replaced by the 413 below
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await send_problem(scope, send, payload_too_large(self.max_bytes))
