"""GET /metrics (Prometheus text format) and the hooks that feed it."""

from __future__ import annotations

from typing import Any

from litestar import Litestar, Request, Response, get

from events.envelope import NewEvent
from services.http.auth import OPEN_SECURITY
from services.http.deps import ServicesDep
from services.log.append import AppendResult
from services.metrics import Metrics, exposition, snapshot

# The classic text format (what generate_latest writes): every Prometheus reads it.
TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"


def metrics_of(app: Litestar) -> Metrics:
    """This app's metrics, made on first use (no await in between: no race)."""
    found: Metrics | None = app.state.get("metrics")
    if found is None:
        found = app.state.metrics = Metrics()
    return found


def observe_request(scope: Any, status: int, seconds: float) -> None:
    """Record one request; the route template keeps the label set small."""
    route = scope.get("path_template") or "unmatched"
    metrics_of(scope["app"]).observe_request(scope["method"], route, status, seconds)


def count_appended(app: Litestar, events: list[NewEvent], results: list[AppendResult]) -> None:
    metrics_of(app).count_appended(events, results)


@get("/metrics", summary="Prometheus metrics", media_type=TEXT_FORMAT, security=OPEN_SECURITY)
async def metrics(request: Request[Any, Any, Any], services: ServicesDep) -> Response[bytes]:
    snap = await snapshot(services.client, services.read_model, services.partitions)
    # Set as a header: Litestar appends "; charset=utf-8" to a text/* media type.
    return Response(exposition(metrics_of(request.app), snap),
                    headers={"Content-Type": TEXT_FORMAT})
