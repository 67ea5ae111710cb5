"""The application: settings, database, the request path, error handlers and routers wired."""

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from sqlalchemy import Engine

from app import __version__, housekeeping
from app.core import metrics
from app.core.config import Settings, get_settings
from app.core.errors import install_error_handlers
from app.core.logs import configure_logging
from app.db.base import on_storage_error
from app.db.connect import create_database
from app.db.readiness import Readiness, report_storage_error
from app.events import delivery
from app.http import access, api_keys, fastapi_param_memo, openapi
from app.http.cors import cors
from app.http.known_routes import RouteTable
from app.http.request_path import RequestPath
from app.http.request_queue import Admission
from app.routers import ROUTERS, TAGS

log = logging.getLogger("app")


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    fastapi_param_memo.install()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info("serving on %s", app.state.database.display_url)
        await app.state.readiness.refresh()  # logs the schema check's ERROR if behind
        watch = asyncio.create_task(app.state.readiness.run_forever())
        chores = asyncio.create_task(housekeeping.run(app.state.database, settings))
        deliveries = delivery.start(app.state.database, settings)
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

    # FastAPIOffline serves Swagger UI's and ReDoc's assets itself: /docs works offline.
    app = FastAPIOffline(
        redoc_url=None,  # docs.install_redoc serves it
        title=openapi.TITLE,
        version=__version__,
        description=openapi.DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        redirect_slashes=False,  # the request path answers both forms directly
        # The service's own metrics and access line are its telemetry. FastAPI's native
        # OpenTelemetry bridge, on by default, looks up three global providers per request
        # (10 µs, bench/README.md "Framework calls per request") even when none is configured.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.database = create_database(settings, engine)
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
        max_body_bytes=settings.max_body_bytes,
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
