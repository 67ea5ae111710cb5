"""The seam with a span per unit of work, for tracing on (app/core/tracing.py).

`TracedDatabase` wraps the engine's `Database`: each `read`, `scan` and `write` called inside a
trace (a traced request's, a delivery's) runs in a client span named after its unit,
`db.write place_order`; its attributes say the engine and the unit, never a parameter. A unit
called outside any trace (the readiness probe, housekeeping, the delivery worker's claims)
gets none: they would be a root trace every second. Nor does a unit of a trace the sampler
left out (its request's span records nothing): its request's context is current instead, so
an event it records still carries the trace on. Tracing off, the app holds the engine's
`Database` itself, and none of this runs.
"""

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode, Tracer

from app.core.errors import ApiError
from app.db.base import Connection, Database


class TracedDatabase(Database):
    def __init__(self, database: Database, tracer: Tracer) -> None:
        self.inner, self.tracer = database, tracer
        self.dialect, self.display_url = database.dialect, database.display_url

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)  # what only one engine has (tests, readiness)

    async def read(self, unit: Any, /, *args: Any, **kwargs: Any) -> Any:
        return await self._unit("read", self.inner.read, unit, args, kwargs)

    async def scan(self, unit: Any, /, *args: Any, **kwargs: Any) -> Any:
        return await self._unit("scan", self.inner.scan, unit, args, kwargs)

    async def write(self, unit: Any, /, *args: Any, **kwargs: Any) -> Any:
        return await self._unit("write", self.inner.write, unit, args, kwargs)

    def snapshot(self) -> AbstractAsyncContextManager[Connection]:
        return self.inner.snapshot()  # an export's reads: its request's span covers them

    async def ping(self) -> None:
        await self.inner.ping()

    async def close(self) -> None:
        await self.inner.close()

    async def _unit(
        self, kind: str, run: Callable[..., Awaitable[Any]], unit: Any, args: Any, kwargs: Any
    ) -> Any:
        if not trace.get_current_span().is_recording():
            return await run(unit, *args, **kwargs)
        name = getattr(unit, "__name__", type(unit).__name__)
        attributes = {
            "db.system.name": self.dialect,
            "db.operation.name": kind,
            "code.function.name": f"{getattr(unit, '__module__', '')}.{name}",
        }
        with self.tracer.start_as_current_span(
            f"db.{kind} {name}",
            kind=SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                return await run(unit, *args, **kwargs)
            except BaseException as error:
                # A refusal (an ApiError under 500: out of stock, a conflict) rolled the unit
                # back as designed; anything else is the unit's failure.
                span.set_attribute("error.type", type(error).__name__)
                if not (isinstance(error, ApiError) and error.status < 500):
                    span.set_status(StatusCode.ERROR)
                raise
