"""The application: settings, database, middleware, error handlers and routers wired together."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from sqlalchemy import Engine

from app import __version__, docs
from app.config import Settings, get_settings
from app.database import create_db_engine
from app.errors import install_error_handlers
from app.middleware import RequestIdMiddleware
from app.routers import health, orders, products, webhooks

log = logging.getLogger("app")


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info("serving on %s", app.state.engine.url.render_as_string(hide_password=True))
        yield
        app.state.engine.dispose()

    # FastAPIOffline serves Swagger UI's and ReDoc's assets itself: /docs works offline.
    app = FastAPIOffline(
        title=docs.TITLE, version=__version__, description=docs.DESCRIPTION,
        openapi_tags=docs.TAGS, lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine or create_db_engine(settings)
    app.add_middleware(RequestIdMiddleware)
    install_error_handlers(app)
    for router in (products.router, orders.router, webhooks.router, health.router):
        app.include_router(router)
    docs.install_openapi(app)
    return app


app = create_app()
