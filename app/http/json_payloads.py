"""JSON in and out for the resource routers.

In: request bodies are parsed refusing duplicate object keys (`{"stock": 1, "stock": 500}`
would otherwise pass as 500), answered 400 `bad_request` like any malformed JSON.
Out: routes return `json_response(view)`: the body is serialized once, by orjson, from the
plain dicts the rules return (pydantic serialization of a list of 20 cost +370 us; bench/). The
routes keep `response_model=` on their decorators, so the OpenAPI document still shows them.
"""

import json
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute

JSON = "application/json"


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"duplicate object key {key!r}")
        seen[key] = value
    return seen


def loads_strict(body: bytes | str) -> Any:
    """`json.loads`, except that an object naming a key twice, or arrays and objects nested
    deeper than Python's recursion limit (about 1,000), are malformed (JSONDecodeError)."""
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    try:
        return json.loads(text, object_pairs_hook=_refuse_duplicates)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise json.JSONDecodeError("arrays or objects nested too deeply", text, 0) from None
    except ValueError as error:
        raise json.JSONDecodeError(str(error), text, 0) from None


# The request FastAPI parses the body of: its `json()` refuses duplicate keys.
class StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads_strict(await self.body())
        return self._json


# The route class of the resource routers: hands its endpoint a StrictJsonRequest.
class StrictJsonRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJsonRequest(request.scope, request.receive))

        return strict_handler


def json_response(
    content: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(content), status_code, headers, JSON)


def json_bytes_response(
    body: bytes, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(body, status_code, headers, JSON)


def created_doc(what: str) -> dict[str, Any]:
    """OpenAPI for a 201 that may be replayed under an Idempotency-Key."""
    return {
        "description": f"The {what}, created (or replayed for a repeated Idempotency-Key).",
        "headers": {
            "Location": {"schema": {"type": "string"}, "description": f"The {what}'s URL."},
            "Idempotent-Replayed": {
                "schema": {"type": "string", "enum": ["true"]},
                "description": "Present on a replayed answer.",
            },
        },
    }


def created_response(status_code: int, body: Any, location: str, replayed: bool) -> Response:
    """A created resource's answer: its URL, and `Idempotent-Replayed` on a replay."""
    headers = {"Location": location}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return json_response(body, status_code, headers)
