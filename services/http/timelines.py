"""GET /v1/timelines/...: one route per timeline kind, one shared query path.

Every route answers JSON pages, or a whole-timeline export chosen by
`format=timelinejs|ics|csv` or by `Accept: text/calendar|text/csv`. An export
follows the cursor through the timeline up to `EXPORT_CAP` entries; when more
remain, `X-Next-Cursor` tells where the next export should start (`cursor=`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import MediaType, Request, Response, get
from litestar.datastructures.headers import MediaTypeHeader
from litestar.enums import ParamType
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    Schema,
)
from litestar.params import FromPath

from projections.entry import Entry
from projections.store import BadCursor
from services.bootstrap import Services
from services.exports.formats import EXPORTS, NEGOTIABLE, filename, render
from services.exports.pages import EXPORT_CAP, collect, title_name
from services.http.deps import ServicesDep
from services.http.errors import AUTH, ApiError, responses
from services.queries import (
    BadQuery,
    NotInLog,
    NotYetProjected,
    TimelineParams,
    TimelineRef,
    parse_params,
    parse_token,
    timeline_name,
    to_query,
    wait_for_position,
)

SUPPORTED_FORMATS = ("json", *EXPORTS)
_json = msgspec.json.Encoder()
_PLAIN_ACCEPT = frozenset({"", "*/*", "application/json"})


class TimelineResponse(msgspec.Struct):
    timeline: TimelineRef
    entries: list[Entry]
    next_cursor: str | None


RESPONSES = {**responses(400, *AUTH, 503), 200: ResponseSpec(
    data_container=TimelineResponse,
    description="A page of the timeline as JSON; with format=timelinejs (application/json), "
                "format=ics or Accept: text/calendar (text/calendar), format=csv or "
                f"Accept: text/csv (text/csv) the whole timeline, up to {EXPORT_CAP:,} entries",
)}


def _query(name: str, schema: Schema, description: str) -> Parameter:
    return Parameter(name=name, param_in=ParamType.QUERY, schema=schema, required=False,
                     description=description)


_TEXT = Schema(type=OpenAPIType.STRING)
# Read from the raw query string by `parse_params` (so every problem is named in
# one 400), hence declared here rather than in the handlers' signatures.
QUERY_PARAMETERS = [
    _query("from", _TEXT, "partial date (YYYY, YYYY-MM, YYYY-MM-DD): entries overlapping "
                          "from this date on"),
    _query("to", _TEXT, "partial date: entries overlapping up to this date"),
    _query("type", Schema(type=OpenAPIType.ARRAY, items=_TEXT),
           "event type; repeat for several"),
    _query("with", _TEXT, "an entity id also involved"),
    _query("limit", Schema(type=OpenAPIType.INTEGER, minimum=1, maximum=1000),
           "entries per page (default 100)"),
    _query("cursor", _TEXT, "opaque: `next_cursor` of the previous page"),
    _query("order", Schema(type=OpenAPIType.STRING, enum=["asc", "desc"]), "default asc"),
    _query("as_of", Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.DATE_TIME),
           "the timeline as it was known at this moment"),
    _query("include_retracted", Schema(type=OpenAPIType.BOOLEAN), "default false"),
    _query("min_position", _TEXT, "a publish's `position`: wait until it is projected "
                                  "(up to 5 s, else 503; 400 if the log does not hold it)"),
    _query("format", Schema(type=OpenAPIType.STRING, enum=list(SUPPORTED_FORMATS)),
           "json (a page) or a whole-timeline export"),
]
CITY = _query("city", _TEXT, "narrows a place timeline to one city")
_EXPORT_BODY = {"text/calendar": OpenAPIMediaType(schema=_TEXT),
                "text/csv": OpenAPIMediaType(schema=_TEXT)}
# format=timelinejs answers a TimelineJS 3 document, also application/json.
_TIMELINEJS = Schema(type=OpenAPIType.OBJECT, required=["events"],
                     description="TimelineJS 3 document (format=timelinejs)")


@dataclass
class TimelineOperation(Operation):
    """The OpenAPI operation of a timeline route: its query parameters and the
    export media types, which the handler signatures do not show."""

    def __post_init__(self) -> None:
        place = "place" in (self.operation_id or "").lower()
        extra = [*QUERY_PARAMETERS, *([CITY] if place else [])]
        self.parameters = [*(self.parameters or []), *extra]
        ok = (self.responses or {}).get("200")
        if isinstance(ok, OpenAPIResponse) and ok.content:
            page = ok.content["application/json"]
            if page.schema is not None:
                page.schema = Schema(any_of=[page.schema, _TIMELINEJS])
            ok.content.update(_EXPORT_BODY)


def _raw_params(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The query's parameters; `type` as a list (any other is given once: `given_once`)."""
    query = request.query_params
    raw: dict[str, Any] = {k: query.get(k) for k in query if k != "type"}
    raw["type"] = query.getall("type", [])
    return raw


def _bad(exc: BadQuery) -> ApiError:
    return ApiError(400, "bad-request", str(exc),
                    errors=[{"path": e.path, "message": e.message} for e in exc.errors])


def negotiate(request: Request[Any, Any, Any], requested: str | None) -> str:
    """`format=` wins; else the Accept header; JSON when neither asks for an export."""
    if requested:
        if requested not in SUPPORTED_FORMATS:
            message = f"format must be one of {', '.join(SUPPORTED_FORMATS)}"
            raise ApiError(400, "bad-request", message,
                           errors=[{"path": "format", "message": message}])
        return requested
    accept = request.headers.get("accept")
    if accept is None or accept.strip() in _PLAIN_ACCEPT:
        return "json"  # what nearly every client sends, without parsing it
    try:
        return NEGOTIABLE[_best_offered(accept)]
    except (OverflowError, ValueError):  # Litestar lets q=inf through as OverflowError
        message = "a q value must be a number from 0 to 1"
        raise ApiError(400, "bad-request", f"Accept: {message}",
                       errors=[{"path": "Accept", "message": message}]) from None


def _best_offered(accept: str) -> str:
    """The offered media type of highest quality (RFC 9110 12.5.1): each type takes
    the quality of the most specific range that matches it, and `q=0` refuses it.
    JSON when the client accepts none (README: anything unknown means JSON); on a tie,
    the earlier in NEGOTIABLE."""
    ranges = [MediaTypeHeader(text) for text in accept.split(",")]
    best, best_quality = "application/json", 0
    for offered in NEGOTIABLE:
        offer = MediaTypeHeader(offered)
        matching = [r.priority for r in ranges if offer.match(r)]
        quality = max(matching, key=lambda p: (p[1], p[0]))[0] if matching else 0
        if quality > best_quality:
            best, best_quality = offered, quality
    return best


async def _export(
    services: Services, fmt: str, kind: str, keys: list[str], key: str, name: str,
    params: TimelineParams,
) -> Response[bytes]:
    query = to_query(name, params)
    collected = await collect(services.read_model, query, params.cursor)
    titled = await title_name(services.read_model, kind, keys, query, collected.entries)
    body = render(fmt, kind, key, collected.entries, titled,
                  more=collected.next_cursor is not None)
    # Set here, not as media_type: Litestar appends "; charset=utf-8" to any text/*
    # media type, which would name the charset twice.
    headers = {"Content-Type": EXPORTS[fmt].media_type, "Vary": "Accept",
               "X-Export-Cap": str(EXPORT_CAP)}
    if fmt != "timelinejs":
        headers["Content-Disposition"] = f'attachment; filename="{filename(fmt, kind, key)}"'
    if collected.next_cursor:
        headers["X-Next-Cursor"] = collected.next_cursor
    return Response(body, headers=headers)


def _reachable(token: str, partitions: int) -> None:
    """A partition this log does not have is never projected: no wait answers that."""
    beyond = sorted(p for p in parse_token(token) if p >= partitions)
    if beyond:
        message = f"partition {beyond[0]} does not exist: this log has {partitions}"
        raise ApiError(400, "bad-request", f"min_position: {message}",
                       errors=[{"path": "min_position", "message": message}])


async def timeline(
    request: Request[Any, Any, Any], services: Services, kind: str, keys: list[str]
) -> Response[Any]:
    raw = _raw_params(request)
    fmt = negotiate(request, raw.get("format"))
    try:
        params = parse_params(raw)
        name, key = timeline_name(kind, keys, raw.get("city") if kind == "place" else None)
    except BadQuery as exc:
        raise _bad(exc) from None
    if params.min_position:
        _reachable(params.min_position, services.partitions)
        try:
            await wait_for_position(services.read_model, services.log, params.min_position)
        except NotInLog as exc:
            raise ApiError(400, "bad-request", f"min_position: {exc}",
                           errors=[{"path": "min_position", "message": str(exc)}]) from None
        except NotYetProjected:
            raise ApiError(503, "not-yet-projected", "the projection has not reached "
                           "min_position yet; retry shortly", retry_after=1) from None
    try:
        if fmt != "json":
            return await _export(services, fmt, kind, keys, key, name, params)
        docs, next_cursor = await services.read_model.page_docs(
            to_query(name, params), params.limit, params.cursor)
    except BadCursor as exc:
        raise ApiError(400, "bad-request", str(exc),
                       errors=[{"path": "cursor", "message": str(exc)}]) from None
    return Response(page_body(TimelineRef(kind, key), docs, next_cursor),
                    media_type=MediaType.JSON, headers={"Vary": "Accept"})


def page_body(ref: TimelineRef, docs: list[bytes], next_cursor: str | None) -> bytes:
    """A `TimelineResponse` as JSON, its entries the stored documents as they are:
    they are `Entry` JSON already, and decoding them to encode them again took most
    of a page's time."""
    return b"".join((b'{"timeline":', _json.encode(ref), b',"entries":[', b",".join(docs),
                     b'],"next_cursor":', _json.encode(next_cursor), b"}"))


@get("/v1/timelines/entity/{ident:str}",
     summary="An entity's timeline", responses=RESPONSES, operation_class=TimelineOperation)
async def entity_timeline(
    request: Request[Any, Any, Any], services: ServicesDep, ident: FromPath[str]
) -> Response[Any]:
    return await timeline(request, services, "entity", [ident])


@get("/v1/timelines/pair/{a:str}/{b:str}",
     summary="Events involving both entities", responses=RESPONSES,
     operation_class=TimelineOperation)
async def pair_timeline(
    request: Request[Any, Any, Any], services: ServicesDep, a: FromPath[str], b: FromPath[str]
) -> Response[Any]:
    return await timeline(request, services, "pair", [a, b])


@get("/v1/timelines/place/{country:str}",
     summary="Events located in a country", responses=RESPONSES, operation_class=TimelineOperation)
async def place_timeline(
    request: Request[Any, Any, Any], services: ServicesDep, country: FromPath[str]
) -> Response[Any]:
    return await timeline(request, services, "place", [country])


@get("/v1/timelines/topic/{topic:str}",
     summary="Events tagged with a topic", responses=RESPONSES, operation_class=TimelineOperation)
async def topic_timeline(
    request: Request[Any, Any, Any], services: ServicesDep, topic: FromPath[str]
) -> Response[Any]:
    return await timeline(request, services, "topic", [topic])


@get("/v1/timelines/all",
     summary="Every event", responses=RESPONSES, operation_class=TimelineOperation)
async def all_timeline(request: Request[Any, Any, Any], services: ServicesDep) -> Response[Any]:
    return await timeline(request, services, "all", [])


ROUTES = [entity_timeline, pair_timeline, place_timeline, topic_timeline, all_timeline]
