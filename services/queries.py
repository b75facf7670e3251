"""Timeline queries: parameters checked and turned into read-model calls."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from typing import Any

import msgspec

from events import catalog
from events.dates import parse_partial_date
from events.envelope import parse_timestamp
from events.errors import EventValidationError, FieldError
from events.refs import ENTITY_ID_PATTERN
from events.stored import parse_position
from projections.asof import utc_text
from projections.entry import Entry, Version, city_key
from projections.fold import Query
from projections.store import ReadModel
from services.log.reader import LogReader

_ENTITY = re.compile(ENTITY_ID_PATTERN)
_COUNTRY = re.compile(r"^[A-Z]{2}$")
MIN_POSITION_WAIT = 5.0


class BadQuery(ValueError):
    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e.path}: {e.message}" for e in errors))


class NotYetProjected(RuntimeError):
    pass


class NotInLog(ValueError):
    """A position beyond its partition's log head. A publish answers only once its
    events are in the log (the head is written in the same script), so no wait can
    reach it: the token is from another log, or from writes this log has lost since
    (wiped, restored from an older file, a failover without TIMELINE_WRITE_REPLICAS)."""

    def __init__(self, partition: int, sequence: int, head: int) -> None:
        super().__init__(f"position {partition}-{sequence} is not in this log: partition "
                         f"{partition} ends at sequence {head} (a token from another log, "
                         "or from writes this log no longer holds)")


class TimelineRef(msgspec.Struct):
    kind: str
    key: str


class TimelineParams(msgspec.Struct, kw_only=True):
    start: str | None = None
    end: str | None = None
    types: tuple[str, ...] = ()
    with_entity: str | None = None
    limit: int = 100
    cursor: str | None = None
    descending: bool = False
    include_retracted: bool = False
    min_position: str | None = None
    as_of: str | None = None  # RFC 3339 UTC, as `recordedtime` writes it


def timeline_name(kind: str, keys: list[str], city: str | None = None) -> tuple[str, str]:
    """(`kind:key` name in the read model, the public key) for a route's path."""
    errors: list[FieldError] = []
    if kind in ("entity", "pair", "topic"):
        for i, k in enumerate(keys):
            if not _ENTITY.fullmatch(k):
                errors.append(FieldError(f"path.{i}", f"{k!r} is not an entity id or topic"))
    if kind == "place" and not _COUNTRY.fullmatch(keys[0]):
        errors.append(FieldError("country", "must be an ISO 3166-1 alpha-2 code, upper case"))
    if errors:
        raise BadQuery(errors)
    if kind == "all":
        return "all", "all"
    if kind == "pair":
        a, b = sorted(keys)
        if a == b:
            raise BadQuery([FieldError("path", "a pair needs two different entities")])
        return f"pair:{a}:{b}", f"{a}/{b}"
    if kind == "place" and city:
        return f"place:{keys[0]}:{city_key(city)}", f"{keys[0]}/{city}"
    return f"{kind}:{keys[0]}", keys[0]


def parse_params(raw: dict[str, Any]) -> TimelineParams:
    """Check the query string of a timeline route; every problem named."""
    errors: list[FieldError] = []
    params = TimelineParams()
    for name, attr, bound in (("from", "start", "earliest"), ("to", "end", "latest")):
        if raw.get(name):
            try:
                date = parse_partial_date(raw[name], name)
                setattr(params, attr, getattr(date, bound).isoformat())
            except EventValidationError as exc:
                errors.extend(exc.errors)
    if params.start and params.end and params.start > params.end:  # an empty page, silently
        errors.append(FieldError("to", f"{raw['to']} ends before from={raw['from']} starts"))
    params.types = tuple(raw.get("type") or ())
    if not all(catalog.is_known(t) for t in params.types):  # `|` would match two types
        errors.append(FieldError("type", "each must be a catalog type or x-<name>.<verb>"))
    if raw.get("with"):
        if not _ENTITY.fullmatch(raw["with"]):
            errors.append(FieldError("with", "must be an entity id"))
        params.with_entity = raw["with"]
    limit = raw.get("limit")
    if limit is not None:
        if not re.fullmatch(r"[0-9]{1,4}", str(limit)) or not 1 <= int(limit) <= 1000:
            errors.append(FieldError("limit", "must be an integer from 1 to 1000"))
        else:
            params.limit = int(limit)
    order = raw.get("order") or "asc"
    if order not in ("asc", "desc"):
        errors.append(FieldError("order", 'must be "asc" or "desc"'))
    params.descending = order == "desc"
    retracted = (raw.get("include_retracted") or "false").lower()
    if retracted not in ("true", "false", "1", "0"):
        errors.append(FieldError("include_retracted", "must be true or false"))
    params.include_retracted = retracted in ("true", "1")
    params.cursor = raw.get("cursor") or None
    params.min_position = raw.get("min_position") or None
    if params.min_position:
        try:
            parse_token(params.min_position)
        except ValueError:
            errors.append(FieldError("min_position", "must be a position token from a publish"))
    if raw.get("as_of"):
        try:
            params.as_of = parse_as_of(raw["as_of"])
        except EventValidationError as exc:
            errors.extend(exc.errors)
    if errors:
        raise BadQuery(errors)
    return params


_POSITION = re.compile(r"[0-9]{1,9}-[0-9]{1,19}")


def parse_token(token: str) -> dict[int, int]:
    """A client's position token; ValueError unless every part is `<partition>-<sequence>`
    in ASCII digits (int() alone would also take " 3", "3_0" and other scripts' digits)."""
    wanted: dict[int, int] = {}
    for part in token.split(","):
        if not _POSITION.fullmatch(part):
            raise ValueError(f"not a position: {part!r}")
        partition, sequence = parse_position(part)
        wanted[partition] = max(wanted.get(partition, 0), sequence)
    return wanted


async def wait_for_position(read_model: ReadModel, log: LogReader, token: str) -> None:
    """Return once the projection has applied `token`; NotInLog at once when the
    log has not reached it, else NotYetProjected after MIN_POSITION_WAIT."""
    wanted = parse_token(token)
    deadline = time.monotonic() + MIN_POSITION_WAIT
    heads_checked = False
    while True:
        applied = await read_model.applied()
        if all(applied.get(p, 0) >= s for p, s in wanted.items()):
            return
        if not heads_checked:
            _written(wanted, await log.heads())
            heads_checked = True
        if time.monotonic() > deadline:
            raise NotYetProjected(token)
        await asyncio.sleep(0.01)


def _written(wanted: dict[int, int], heads: dict[int, int]) -> None:
    for partition, sequence in sorted(wanted.items()):
        if sequence > heads.get(partition, 0):
            raise NotInLog(partition, sequence, heads.get(partition, 0))


def parse_as_of(text: str) -> str:
    """An `as_of` instant (RFC 3339, any offset) written like `recordedtime` (UTC)."""
    if re.search(r" [0-9]{2}:[0-9]{2}$", text):  # an unencoded "+" in a URL arrives as a space
        text = text[:-6] + "+" + text[-5:]
    moment = parse_timestamp(text, "as_of")
    try:
        return utc_text(moment)
    except OverflowError:  # 0001-01-01T00:00+01:00 is in year 0 in UTC
        raise EventValidationError.one(
            "as_of", "must be an instant from year 1 to 9999 in UTC") from None


async def projection_lag(log: LogReader, read_model: ReadModel) -> dict[int, int]:
    """Per partition, how many logged entries the projection has not applied yet."""
    heads = await log.heads()
    applied = await read_model.applied()
    return {p: max(0, s - applied.get(p, 0)) for p, s in heads.items()}


def to_query(name: str, params: TimelineParams) -> Query:
    return Query(
        timeline=name, start=params.start, end=params.end, types=params.types,
        with_entity=params.with_entity, include_retracted=params.include_retracted,
        descending=params.descending, as_of=params.as_of,
    )


class EntitySummary(msgspec.Struct):
    id: str
    name: str | None
    kinds: list[str]
    events: int
    counts_by_type: dict[str, int]
    first_occurred: str | None
    last_occurred: str | None
    counterparts: list[dict[str, Any]]
    places: list[dict[str, Any]]


async def entity_summary(read_model: ReadModel, ident: str) -> EntitySummary | None:
    members = await read_model.all_members(f"entity:{ident}")
    entries = [e for e in await read_model.facts_of(
        [m[29:].rsplit("\x1f", 1)[0] for m in members]) if e.status != "retracted"]
    names = await read_model.names([ident])
    if not entries and ident not in names:
        return None
    others: Counter[str] = Counter()
    places: Counter[str] = Counter()
    for entry in entries:
        others.update({r.id for r in entry.entities if r.id != ident})
        if entry.place:
            places[entry.place.country] += 1
    top = [i for i, _ in others.most_common(10)]
    top_names = await read_model.names(top)
    kind = await read_model.kind(ident)
    return EntitySummary(
        id=ident, name=names.get(ident), kinds=[kind] if kind else [], events=len(entries),
        counts_by_type=dict(Counter(e.type for e in entries)),
        first_occurred=entries[0].occurred if entries else None,
        last_occurred=max(entries, key=lambda e: e.occurred_end).occurred if entries else None,
        counterparts=[{"id": i, "name": top_names.get(i), "events": others[i]} for i in top],
        places=[{"country": c, "events": n} for c, n in places.most_common()],
    )


class EventView(msgspec.Struct):
    entry: Entry
    history: list[Version]
