"""GET /asyncapi.json: the AsyncAPI 3 document of the service's Redis streams."""

from __future__ import annotations

from typing import Any

from litestar import get

from services.asyncapi import document
from services.http.auth import OPEN_SECURITY
from services.http.deps import ServicesDep


@get("/asyncapi.json", summary="AsyncAPI 3 document: ingest stream, partition logs, live feed",
     security=OPEN_SECURITY)
async def asyncapi(services: ServicesDep) -> dict[str, Any]:
    return document(services.partitions)
