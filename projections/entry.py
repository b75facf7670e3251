"""Timeline entries: what one event looks like on a timeline, and where it goes.

Pure: no I/O. The Redis store and the in-memory reference fold share it.
"""

from __future__ import annotations

import datetime as dt
import functools
from itertools import combinations
from typing import Any, Literal

import msgspec

from events import catalog
from events.dates import PartialDate, parse_partial_date
from events.headlines import headline
from events.refs import EntityRef
from events.stored import StoredEvent, event_key
from events.upcast import upcast
from projections.asof import stamp

Status = Literal["active", "corrected", "retracted"]
_STATUS_FLAG = {"active": "a", "corrected": "c", "retracted": "r"}
_PRECISION_RANK = {"year": "0", "month": "1", "day": "2"}


class EntityRole(msgspec.Struct, frozen=True):
    id: str
    name: str | None
    role: str


class Entry(msgspec.Struct, kw_only=True):
    """One event as a timeline shows it (DESIGN 4, "An entry")."""

    source: str
    id: str
    type: str
    subject: str
    occurred: str
    occurred_start: str
    occurred_end: str
    precision: str
    qualifier: str | None
    headline: str
    entities: list[EntityRole]
    place: dict[str, Any] | None
    topics: list[str]
    data: dict[str, Any]
    recordedtime: str
    recordedby: str
    position: str
    version: int = 1
    status: Status = "active"

    @property
    def key(self) -> str:
        return event_key(self.source, self.id)


class Version(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One stored event that shaped an entry: original, correction or retraction."""

    source: str
    id: str
    type: str
    recordedtime: str
    recordedby: str
    position: str
    occurred: str | None = None
    reason: str | None = None
    data: dict[str, Any] | None = None


def first_history(entry: Entry) -> list[Version]:
    """The history of an entry never amended: its own event, the one version. The read
    model keeps no history for such an entry (a third of an event's read-model bytes)."""
    return [Version(source=entry.source, id=entry.id, type=entry.type,
                    recordedtime=entry.recordedtime, recordedby=entry.recordedby,
                    position=entry.position, occurred=entry.occurred)]


class _Involved(msgspec.Struct, frozen=True):
    id: str


class _Country(msgspec.Struct, frozen=True):
    country: str


class EntryFacts(msgspec.Struct, frozen=True):
    """The parts of an entry an entity's summary counts. Decoding a stored document
    into these skips its data and headline: about a third of the cost of an `Entry`."""

    type: str
    occurred: str
    occurred_end: str
    entities: list[_Involved]
    place: _Country | None
    status: Status = "active"


entry_encoder = msgspec.json.Encoder()
entry_decoder = msgspec.json.Decoder(Entry)
facts_decoder = msgspec.json.Decoder(EntryFacts)
history_decoder = msgspec.json.Decoder(list[Version])


def _involved(subject: str, refs: list[tuple[EntityRef, str]]) -> list[EntityRole]:
    roles: dict[str, EntityRole] = {}
    for ref, role in refs:
        if ref.id not in roles:
            roles[ref.id] = EntityRole(ref.id, ref.name, role)
    if subject not in roles:
        roles = {subject: EntityRole(subject, None, "subject"), **roles}
    return list(roles.values())


Name = tuple[str, str | None, str | None]  # (entity id, name, kind) as an event gives them


def build_entry(
    event: StoredEvent, occurred: PartialDate, data: dict[str, Any], *,
    version: int = 1, status: Status = "active",
) -> Entry:
    """The entry for `event`, shown with `occurred` and `data` (its own or corrected)."""
    return entry_and_names(event, occurred, data, version=version, status=status)[0]


def entry_and_names(
    event: StoredEvent, occurred: PartialDate, data: dict[str, Any], *,
    version: int = 1, status: Status = "active",
) -> tuple[Entry, list[Name]]:
    """`build_entry`, and the (id, name, kind) of every entity reference the data
    carries, from one decoding of the data (the projection's hottest step)."""
    payload = catalog.decode_data(event.type, upcast(event.type, event.schemaversion, data))
    place = payload.place
    refs: list[tuple[EntityRef, str]] = payload.entities()
    entry = Entry(
        source=event.source, id=event.id, type=event.type, subject=event.subject,
        occurred=occurred.text, occurred_start=occurred.earliest.isoformat(),
        occurred_end=occurred.latest.isoformat(), precision=occurred.precision.label,
        qualifier=occurred.qualifier or None,
        headline=headline(event.type, event.subject, payload),
        entities=_involved(event.subject, refs),
        place=msgspec.to_builtins(place) if place is not None else None,
        topics=list(payload.topics), data=data, recordedtime=event.recordedtime,
        recordedby=event.recordedby, position=event.position, version=version, status=status,
    )
    return entry, [(ref.id, ref.name, ref.kind) for ref, _ in refs]


def timelines(entry: Entry) -> list[str]:
    """Every timeline the entry belongs to, as `kind:key` names."""
    ids = sorted({e.id for e in entry.entities})
    names = ["all", *(f"entity:{i}" for i in ids)]
    names += [f"pair:{a}:{b}" for a, b in combinations(ids, 2)]
    if entry.place:
        country = str(entry.place["country"])
        names.append(f"place:{country}")
        if entry.place.get("city"):
            names.append(f"place:{country}:{city_key(str(entry.place['city']))}")
    names += [f"topic:{t}" for t in sorted(set(entry.topics))]
    return names


def city_key(city: str) -> str:
    return " ".join(city.lower().split())


def _compact_day(iso_day: str) -> str:
    return iso_day.replace("-", "")


def member(entry: Entry) -> str:
    """The sorted-set member: lexical order is the timeline order of DESIGN 3.4.

    earliest day, precision (coarser first), recordedtime, source, id; then,
    outside the order, latest day, status flag and type for filtering.
    """
    recorded = stamp(entry.recordedtime)
    precision = _PRECISION_RANK[entry.precision]
    return (
        f"{_compact_day(entry.occurred_start)}{precision}{recorded}{entry.source}\x1f{entry.id}"
        f"\x1f{_compact_day(entry.occurred_end)}{_STATUS_FLAG[entry.status]}{entry.type}"
    )


def sort_key(entry: Entry) -> tuple[str, int, str, str, str]:
    """The same order as `member`, as a tuple (for in-memory folds)."""
    rank = {"year": 0, "month": 1, "day": 2}[entry.precision]
    return (entry.occurred_start, rank, entry.recordedtime, entry.source, entry.id)


def span_days(entry: Entry) -> int:
    start = dt.date.fromisoformat(entry.occurred_start)
    return (dt.date.fromisoformat(entry.occurred_end) - start).days


@functools.lru_cache(maxsize=8192)  # dates repeat across a log; PartialDate is frozen
def occurred_of(text: str) -> PartialDate:
    return parse_partial_date(text)
