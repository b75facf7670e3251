"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

import structlog
from litestar import Response, get
from litestar.openapi.datastructures import ResponseSpec
from redis.exceptions import RedisClusterException, RedisError

from services.http.auth import OPEN_SECURITY
from services.http.deps import ServicesDep
from services.queries import projection_lag

log = structlog.get_logger("http")
MAX_LAG = 1000  # entries a partition's projection may trail its log and stay ready


@get("/healthz", summary="The process is up", security=OPEN_SECURITY)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", summary="The server answers and projections are within lag",
     security=OPEN_SECURITY, responses={503: ResponseSpec(
         data_container=dict[str, Any], description="not ready: `reason` says why")})
async def readyz(services: ServicesDep) -> Response[dict[str, Any]]:
    try:
        behind = await projection_lag(services.log, services.read_model)
    except (RedisError, RedisClusterException, OSError) as exc:
        # An open route: the error's text (addresses, ports) stays in the log.
        log.warning("readiness: server unreachable", error=str(exc))
        return Response({"ready": False, "reason": "server unreachable"}, status_code=503)
    lag = {str(p): n for p, n in behind.items()}
    ready = all(v <= MAX_LAG for v in lag.values())
    body = {"ready": ready, "lag": lag}
    if not ready:
        body["reason"] = f"a projection trails its log by more than {MAX_LAG} entries"
    return Response(body, status_code=200 if ready else 503)
