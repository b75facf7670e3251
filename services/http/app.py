"""The Litestar application: routes, error handlers, request logging."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import structlog
from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from events.envelope import MAX_BATCH_BYTES
from services import bootstrap
from services.config import Settings
from services.http import health, lookups, publish, timelines
from services.http.errors import ApiError, api_error, http_error, unexpected

log = structlog.get_logger("http")


def request_logging(app: ASGIApp) -> ASGIApp:
    """One log line per request, with a request id bound for its duration."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        request_id = uuid.uuid4().hex[:16]
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await app(scope, receive, capture)
            finally:
                log.info("request", method=scope["method"], path=scope["path"],
                         status=status, ms=round((time.perf_counter() - started) * 1000, 2))

    return middleware


def create_app(settings: Settings, built: bootstrap.Services | None = None) -> Litestar:
    """The app; with `built` it uses those adapters, else it connects on startup."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if built is not None:
            app.state.services = built
            yield
            return
        async with bootstrap.services(settings, start_server=False) as services:
            app.state.services = services
            yield

    def provide_services(state: State) -> bootstrap.Services:
        services: bootstrap.Services = state.services
        return services

    return Litestar(
        route_handlers=[publish.publish, *timelines.ROUTES, lookups.event, lookups.entity,
                        health.healthz, health.readyz],
        dependencies={"services": Provide(provide_services, sync_to_thread=False)},
        exception_handlers={ApiError: api_error, HTTPException: http_error,
                            Exception: unexpected},
        lifespan=[lifespan],
        middleware=[request_logging],
        request_max_body_size=MAX_BATCH_BYTES + 1024,
        openapi_config=OpenAPIConfig(title="Timeline service", version="1.0.0",
                                     path="/schema", render_plugins=[JsonRenderPlugin()]),
        debug=False,
        on_app_init=[_quiet],
    )


def _quiet(config: AppConfig) -> AppConfig:
    config.logging_config = None
    return config


__all__ = ["Any", "create_app"]
