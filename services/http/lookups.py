"""One event with its history, and one entity's summary."""

from __future__ import annotations

import re

from litestar import get
from litestar.params import FromPath, FromQuery

from events.errors import EventValidationError
from events.refs import ENTITY_ID_PATTERN
from services.http.deps import ServicesDep
from services.http.errors import AUTH, ApiError, responses
from services.queries import EntitySummary, EventView, entity_summary, parse_as_of

ENTITY_ID = re.compile(ENTITY_ID_PATTERN)


@get("/v1/events", summary="One event: its current entry and every stored version",
     responses=responses(400, *AUTH, 404))
async def event(
    services: ServicesDep,
    source: FromQuery[str | None] = None,
    id: FromQuery[str | None] = None,  # noqa: A002
    as_of: FromQuery[str | None] = None,
) -> EventView:
    missing = [name for name, value in (("source", source), ("id", id)) if not value]
    if missing:
        raise ApiError(400, "bad-request", "source and id are both required",
                       errors=[{"path": m, "message": "required"} for m in missing])
    when = None
    if as_of:
        try:
            when = parse_as_of(as_of)
        except EventValidationError as exc:
            raise ApiError(400, "bad-request", str(exc), errors=[
                {"path": e.path, "message": e.message} for e in exc.errors]) from None
    found = await services.read_model.entry(str(source), str(id), as_of=when)
    if found is None:
        known = f" as of {when}" if when else ""
        raise ApiError(404, "not-found", f"no event {id!r} from {source!r}{known}")
    return EventView(*found)


@get("/v1/entities/{ident:str}", summary="What is known about one entity",
     responses=responses(400, *AUTH, 404))
async def entity(services: ServicesDep, ident: FromPath[str]) -> EntitySummary:
    if not ENTITY_ID.fullmatch(ident):  # as the timeline routes answer it: not a 404
        message = f"{ident[:130]!r} is not an entity id"
        raise ApiError(400, "bad-request", message,
                       errors=[{"path": "path.0", "message": message}])
    summary = await entity_summary(services.read_model, ident)
    if summary is None:
        raise ApiError(404, "not-found", f"no entity {ident!r}")
    return summary
