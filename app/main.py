"""The application: settings, database, the request path, error handlers and routers wired."""

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from sqlalchemy import Engine

from app import __version__, housekeeping
from app.core import currencies, metrics, tracing
from app.core.config import Settings, get_settings
from app.core.errors import install_error_handlers
from app.core.logs import configure_logging
from app.db.base import on_storage_error
from app.db.connect import create_database
from app.db.readiness import Readiness, report_storage_error
from app.db.traced import TracedDatabase
from app.events import delivery
from app.http import access, api_keys, fastapi_param_memo, openapi
from app.http.cors import cors
from app.http.known_routes import RouteTable
from app.http.request_path import RequestPath
from app.http.request_queue import Admission
from app.routers import ROUTERS, TAGS

if TYPE_CHECKING:  # the SDK is imported only when traces are on (bench/README.md "Traces")
    from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger("app")


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task


def create_app(
    settings: Settings | None = None,
    engine: Engine | None = None,
    tracer_provider: "TracerProvider | None" = None,
) -> FastAPI:
    """`tracer_provider`: where spans go (tests: an in-memory exporter); unset, the `OTEL_*`
    variables say (app/core/tracing.py), and by default there are no traces."""
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    fastapi_param_memo.install()
    traces = tracer_provider or tracing.provider_from_environment()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info("serving on %s", app.state.database.display_url)
        await app.state.readiness.refresh()  # logs the schema check's ERROR if behind
        watch = asyncio.create_task(app.state.readiness.run_forever())
        chores = asyncio.create_task(housekeeping.run(app.state.database, settings))
        deliveries = delivery.start(
            app.state.database, settings, traces.get_tracer("app.events") if traces else None
        )
        app.state.deliveries = deliveries  # a test ping goes out on its client and resolver
        # What start-up built lives as long as the process: out of the collector's way, so
        # full collections stop scanning it (bench/README.md "Garbage collector").
        gc.collect()
        gc.freeze()
        yield
        gc.unfreeze()
        await deliveries.stop()  # finishes (or releases) the deliveries in hand
        await _stop(watch)
        await _stop(chores)
        metrics.worker_stopped()
        await app.state.database.close()
        if traces is not None and tracer_provider is None:  # ours: the spans still held go
            await asyncio.to_thread(traces.shutdown)

    # FastAPIOffline serves Swagger UI's and ReDoc's assets itself: /docs works offline.
    app = FastAPIOffline(
        redoc_url=None,  # docs.install_redoc serves it
        title=openapi.TITLE,
        version=__version__,
        description=openapi.DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        redirect_slashes=False,  # the request path answers both forms directly
        # FastAPI's own OpenTelemetry bridge makes the request spans, traces on only: on by
        # default, it looks up three global providers per request (10 µs, bench/README.md
        # "Framework calls per request") even when none is configured. Metrics and error
        # records stay the service's own (/metrics, the JSON log).
        telemetry={
            "tracing": traces is not None,
            "tracer_provider": traces,
            "metrics": False,
            "logs": False,
            "operation_spans": False,
            "auto_configure": False,
            "exclude": tracing.untraced,
        },
    )
    app.state.settings = settings
    currencies.use(settings.currency)  # what every product and order shows
    database = create_database(settings, engine)
    app.state.database = (
        database if traces is None else TracedDatabase(database, traces.get_tracer("app.db"))
    )
    metrics.setup(settings.prometheus_multiproc_dir)
    on_storage_error(report_storage_error)  # /readyz says so too, for a while
    app.state.readiness = Readiness(
        app.state.database, settings.readiness_interval_seconds, settings.min_free_disk_mib << 20
    )
    install_error_handlers(app)
    routers = ROUTERS
    # The routes go straight into the app's router, in this order and ahead of the docs'
    # routes (matched one by one, in order, on every request): `include_router` would wrap
    # each router in a layer that is matched, and its routes' scopes rebuilt, per request (a
    # fifth of the calls per request, bench/README.md "Routing"). Nothing the routers declare
    # is lost: each route already carries its prefix, tags and responses.
    app.router.routes[0:0] = [route for router in routers for route in router.routes]
    app.add_middleware(
        RequestPath,
        routes=RouteTable(route for router in routers for route in router.routes),
        readiness=app.state.readiness,
        admission=Admission(
            settings.in_flight_limit, settings.max_queued, settings.queue_timeout_seconds
        ),
        keys=api_keys.api_keys(settings.named_api_keys),
        cors=cors(settings.cors_origins, settings.cors_allow_headers),
        traces=traces is not None,
        max_body_bytes=settings.max_body_bytes,
        large_body_bytes=settings.import_max_body_bytes,
        body_timeout=settings.body_read_timeout_seconds,
        max_header_bytes=settings.max_header_bytes,
        max_headers=settings.max_headers,
    )
    openapi.install_openapi(app)
    openapi.install_redoc(app)
    api_keys.document_api_keys(app)
    access.document_roles(app)
    return app


app = create_app()
