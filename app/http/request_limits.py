"""Limits on what a request may send: header size and count, body size, and body time.

The request path (app/http/request_path.py) reads a request's body itself, whole, before any work
starts: a body over the limit is refused (413) as soon as it is declared or, streamed, as soon
as it passes the limit; one that does not arrive within the body-read timeout is refused (408)
and its connection closed, so a stalled client holds neither a worker's turn nor a shutdown.
Headers arrive before the app sees anything: uvicorn has no time limit on them (the proxy in
front of the service has one, docs/deploy-render.md), but their size and count are checked
here (431) before any other work.
"""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import Message, Receive

from app.core.errors import ApiError

BodyResult = bytes | ApiError | None  # the body, a refusal, or None: the client left


def payload_too_large(limit: int) -> ApiError:
    return ApiError(
        "payload_too_large",
        f"The request body is over the limit of {limit} bytes.",
        headers={"Connection": "close"},
        limit=limit,
    )


def request_timeout(seconds: float) -> ApiError:
    return ApiError(
        "request_timeout",
        f"The request body did not arrive within {seconds:g} s.",
        headers={"Connection": "close"},
    )


def headers_too_large(max_bytes: int, max_count: int) -> ApiError:
    return ApiError(
        "headers_too_large",
        f"Request headers are limited to {max_count} fields and {max_bytes} bytes in all.",
        headers={"Connection": "close"},
        max_header_bytes=max_bytes,
        max_headers=max_count,
    )


async def read_body(receive: Receive, limit: int, timeout: float) -> BodyResult:
    """The whole body, within `limit` bytes and `timeout` seconds."""
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return None
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    return payload_too_large(limit)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
    except TimeoutError:
        return request_timeout(timeout)


def replaying(body: bytes, receive: Receive) -> Callable[[], Awaitable[Message]]:
    """A `receive` that gives the app the body already read, then waits as the server's does."""
    pending: list[dict[str, Any]] = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replay
