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
from litestar.openapi.spec import Components
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from redis.exceptions import RedisClusterException, RedisError

from events.envelope import MAX_BATCH_BYTES
from services import bootstrap, heap
from services.auth.tokens import load_tokens
from services.config import Settings
from services.http import asyncapi, auth, health, live, lookups, metrics, publish, search, timelines
from services.http import audit as audit_routes
from services.http.errors import (
    ApiError,
    api_error,
    bad_head,
    http_error,
    store_error,
    unexpected,
)
from services.http.query_params import given_once
from services.log.reader import BadHead
from services.web import routes as web

log = structlog.get_logger("http")
CLIENT_CLOSED = 499


def request_logging(app: ASGIApp) -> ASGIApp:
    """One log line per request, with a request id bound for its duration. It wraps the
    whole app (services.http.server), so it sees the route and principal Litestar
    writes into the scope, or their absence for a request no route matched."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()
        gone = False

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        async def watch() -> Message:
            nonlocal gone
            message = await receive()
            gone = gone or message["type"] == "http.disconnect"
            return message

        request_id = uuid.uuid4().hex[:16]
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await app(scope, watch, capture)
            finally:
                seconds = time.perf_counter() - started
                if gone and status == 500:
                    # The client hung up mid-request (Litestar answers its unfinished
                    # body with a 500 nobody receives): not a server error. 499 is
                    # nginx's "client closed request".
                    status = CLIENT_CLOSED
                metrics.observe_request(scope, status, seconds)
                log.info("request", method=scope["method"], path=scope["path"],
                         principal=scope.get("user"), status=status,
                         ms=round(seconds * 1000, 2))

    return middleware


def create_app(settings: Settings, built: bootstrap.Services | None = None) -> Litestar:
    """The app; with `built` it uses those adapters, else it connects on startup."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if built is not None:
            app.state.services = built
            # Start-up objects (modules, routes, schemas, connections): the collector
            # need not walk them again on every full collection a batch request triggers.
            heap.settle()
            yield
            return
        async with bootstrap.services(settings, start_server=False) as services:
            app.state.services = services
            heap.settle()
            yield

    def provide_services(state: State) -> bootstrap.Services:
        services: bootstrap.Services = state.services
        return services

    return Litestar(
        route_handlers=[publish.publish, *timelines.ROUTES, lookups.event, lookups.entity,
                        health.healthz, health.readyz, search.entities, live.live,
                        metrics.metrics, asyncapi.asyncapi, *web.ROUTES,
                        *audit_routes.ROUTES],
        dependencies={"services": Provide(provide_services, sync_to_thread=False)},
        exception_handlers={ApiError: api_error, HTTPException: http_error, BadHead: bad_head,
                            RedisError: store_error, RedisClusterException: store_error,
                            Exception: unexpected},
        lifespan=[lifespan],
        middleware=[auth.middleware(load_tokens(settings.tokens, settings.tokens_file))],
        request_max_body_size=MAX_BATCH_BYTES + 1024,
        openapi_config=OpenAPIConfig(
            title="Timeline service", version="1.0.0", path="/schema",
            render_plugins=[JsonRenderPlugin()],
            # Every operation needs the bearer token unless it says otherwise: the open
            # routes (probes, metrics, API descriptions) declare `security=auth.OPEN_SECURITY`.
            security=[{auth.SCHEME: []}],
            components=Components(security_schemes={auth.SCHEME: auth.SECURITY_SCHEME})),
        before_request=given_once,
        debug=False,
        on_app_init=[_quiet],
    )


def _quiet(config: AppConfig) -> AppConfig:
    config.logging_config = None
    return config


__all__ = ["Any", "create_app"]
