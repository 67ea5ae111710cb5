"""The application: settings, database, middleware, error handlers and routers wired together."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from sqlalchemy import Engine

from app import __version__, docs, event_delivery, housekeeping, metrics, observability, security
from app.config import Settings, get_settings
from app.database import create_database
from app.errors import install_error_handlers
from app.limits import BodySizeLimitMiddleware
from app.logs import configure_logging
from app.middleware import RequestIdMiddleware
from app.observability import RequestMetricsMiddleware
from app.routers import events, health, orders, products, stock, webhooks

log = logging.getLogger("app")


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info("serving on %s", app.state.database.display_url)
        chores = asyncio.create_task(housekeeping.run(app.state.database, settings))
        deliveries = event_delivery.start(app.state.database, settings)
        yield
        await deliveries.stop()  # finishes (or releases) the deliveries in hand
        chores.cancel()
        with suppress(asyncio.CancelledError):
            await chores
        metrics.worker_stopped()
        await app.state.database.close()

    # FastAPIOffline serves Swagger UI's and ReDoc's assets itself: /docs works offline.
    app = FastAPIOffline(
        title=docs.TITLE,
        version=__version__,
        description=docs.DESCRIPTION,
        openapi_tags=docs.TAGS,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.database = create_database(settings, engine)
    metrics.setup(None, settings.prometheus_multiproc_dir)
    # The last added runs first: request id, metrics and log line, API key, body limit, routes.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    security.install_api_keys(app, settings.api_keys)
    app.add_middleware(RequestMetricsMiddleware)
    app.add_middleware(RequestIdMiddleware)
    install_error_handlers(app)
    routers = (products.router, orders.router, webhooks.router, health.router, observability.router)
    for router in routers:
        app.include_router(router)
    app.include_router(stock.router)
    app.include_router(events.router)
    docs.install_openapi(app)
    security.document_api_keys(app)
    return app


app = create_app()
