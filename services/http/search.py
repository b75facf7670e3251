"""GET /v1/entities?prefix=: type-ahead over known entities (the web page's picker)."""

from __future__ import annotations

from typing import Annotated

from litestar import get
from litestar.params import Parameter

from services.entity_search import EntityMatch, search_entities
from services.http.deps import ServicesDep
from services.http.errors import AUTH, responses


@get("/v1/entities", summary="Known entities whose id or name starts with a prefix",
     responses=responses(400, *AUTH))
async def entities(
    services: ServicesDep,
    prefix: Annotated[str, Parameter(max_length=128, description="start of an id or name; "
                                     "empty lists the first ids")] = "",
    limit: Annotated[int, Parameter(ge=1, le=100)] = 10,
) -> dict[str, list[EntityMatch]]:
    return {"entities": await search_entities(services.read_model, prefix, limit)}
