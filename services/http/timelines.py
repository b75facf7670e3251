"""GET /v1/timelines/...: one route per timeline kind, one shared query path."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, get

from projections.entry import Entry
from projections.store import BadCursor
from services.bootstrap import Services
from services.http.errors import ApiError
from services.queries import (
    BadQuery,
    NotYetProjected,
    TimelineRef,
    parse_params,
    timeline_name,
    to_query,
    wait_for_position,
)

SUPPORTED_FORMATS = ("json",)


class TimelineResponse(msgspec.Struct):
    timeline: TimelineRef
    entries: list[Entry]
    next_cursor: str | None


def _raw_params(request: Request[Any, Any, Any]) -> dict[str, Any]:
    query = request.query_params
    raw: dict[str, Any] = {k: query.get(k) for k in query if k != "type"}
    raw["type"] = query.getall("type", [])
    return raw


def _bad(exc: BadQuery) -> ApiError:
    return ApiError(400, "bad-request", str(exc),
                    errors=[{"path": e.path, "message": e.message} for e in exc.errors])


async def timeline(
    request: Request[Any, Any, Any], services: Services, kind: str, keys: list[str]
) -> TimelineResponse:
    raw = _raw_params(request)
    fmt = raw.get("format") or "json"
    if fmt not in SUPPORTED_FORMATS:
        raise ApiError(400, "bad-request", f"format must be one of {', '.join(SUPPORTED_FORMATS)}")
    try:
        params = parse_params(raw)
        name, key = timeline_name(kind, keys, raw.get("city") if kind == "place" else None)
    except BadQuery as exc:
        raise _bad(exc) from None
    if params.min_position:
        try:
            await wait_for_position(services.read_model, params.min_position)
        except NotYetProjected:
            raise ApiError(503, "not-yet-projected", "the projection has not reached "
                           "min_position yet; retry shortly", retry_after=1) from None
    try:
        page = await services.read_model.page(to_query(name, params), params.limit,
                                              params.cursor)
    except BadCursor as exc:
        raise ApiError(400, "bad-request", str(exc),
                       errors=[{"path": "cursor", "message": str(exc)}]) from None
    return TimelineResponse(TimelineRef(kind, key), page.entries, page.next_cursor)


@get("/v1/timelines/entity/{ident:str}", summary="An entity's timeline")
async def entity_timeline(
    request: Request[Any, Any, Any], services: Services, ident: str
) -> TimelineResponse:
    return await timeline(request, services, "entity", [ident])


@get("/v1/timelines/pair/{a:str}/{b:str}", summary="Events involving both entities")
async def pair_timeline(
    request: Request[Any, Any, Any], services: Services, a: str, b: str
) -> TimelineResponse:
    return await timeline(request, services, "pair", [a, b])


@get("/v1/timelines/place/{country:str}", summary="Events located in a country")
async def place_timeline(
    request: Request[Any, Any, Any], services: Services, country: str
) -> TimelineResponse:
    return await timeline(request, services, "place", [country])


@get("/v1/timelines/topic/{topic:str}", summary="Events tagged with a topic")
async def topic_timeline(
    request: Request[Any, Any, Any], services: Services, topic: str
) -> TimelineResponse:
    return await timeline(request, services, "topic", [topic])


@get("/v1/timelines/all", summary="Every event")
async def all_timeline(request: Request[Any, Any, Any], services: Services) -> TimelineResponse:
    return await timeline(request, services, "all", [])


ROUTES = [entity_timeline, pair_timeline, place_timeline, topic_timeline, all_timeline]
