"""The pure fold from stored events to entries, and an in-memory read model.

`fold` decides what one event does to the entry it concerns, given that
entry's current state; the Redis store writes the result, and `Timelines`
keeps it in memory as the reference the tests compare Redis against.
"""

from __future__ import annotations

from typing import Any

import msgspec

from events import catalog
from events.catalog import EventCorrected, EventRetracted
from events.stored import StoredEvent, event_key, parse_position
from projections.entry import (
    Entry,
    Status,
    Version,
    entry_and_names,
    occurred_of,
    sort_key,
    timelines,
)


class Change(msgspec.Struct, kw_only=True):
    """What one event does: `entry` replaces `previous` under `key`."""

    key: str
    entry: Entry | None
    previous: Entry | None
    history: list[Version]
    names: list[tuple[str, str | None, str | None]] = []
    alias: str | None = None


State = tuple[Entry, list[Version]]


def _version(event: StoredEvent, **extra: Any) -> Version:
    return Version(
        source=event.source, id=event.id, type=event.type, recordedtime=event.recordedtime,
        recordedby=event.recordedby, position=event.position, **extra,
    )


def _origin(entry: Entry) -> StoredEvent:
    partition, sequence = parse_position(entry.position)
    return StoredEvent(
        id=entry.id, source=entry.source, type=entry.type, subject=entry.subject,
        occurred=entry.occurred, data=entry.data, recordedtime=entry.recordedtime,
        recordedby=entry.recordedby, partition=partition, sequence=sequence,
        schemaversion=catalog.schema_version(entry.type),
    )


def target_key(event: StoredEvent) -> str | None:
    """The entry an amendment changes, or None for an ordinary event."""
    if event.type in (catalog.CORRECTED, catalog.RETRACTED):
        return event_key(event.source, str(event.data["target"]))
    return None


def fold(event: StoredEvent, current: State | None) -> Change:
    """What `event` does, given the current state of the entry it targets."""
    target = target_key(event)
    if target is None:
        entry, names = entry_and_names(event, occurred_of(event.occurred), event.data)
        return Change(key=event.key, entry=entry, previous=None,
                      history=[_version(event, occurred=event.occurred)], names=names)
    if current is None:  # the append path forbids it; never lose the event's turn
        return Change(key=target, entry=None, previous=None, history=[], alias=event.key)
    entry, history = current
    if event.type == catalog.RETRACTED:
        retraction = msgspec.convert(event.data, EventRetracted)
        retracted = msgspec.structs.replace(entry, status="retracted")
        return Change(key=target, entry=retracted, previous=entry, alias=event.key,
                      history=[*history, _version(event, reason=retraction.reason)])
    correction = msgspec.convert(event.data, EventCorrected)
    occurred = correction.occurred or entry.occurred
    data = correction.data if correction.data is not None else entry.data
    status: Status = "retracted" if entry.status == "retracted" else "corrected"
    corrected, names = entry_and_names(_origin(entry), occurred_of(occurred), data,
                                       version=entry.version + 1, status=status)
    return Change(
        key=target, entry=corrected, previous=entry, alias=event.key, names=names,
        history=[*history, _version(event, occurred=correction.occurred,
                                    reason=correction.reason, data=correction.data)],
    )


class Query(msgspec.Struct, kw_only=True, frozen=True):
    """A timeline query's filters, shared by the Redis store and the reference fold."""

    timeline: str
    start: str | None = None  # ISO day: entries whose latest day is on or after it
    end: str | None = None  # ISO day: entries whose earliest day is on or before it
    types: tuple[str, ...] = ()
    with_entity: str | None = None
    include_retracted: bool = False
    descending: bool = False
    # RFC 3339 UTC, written like `recordedtime`: the timeline as it was known then.
    # Only the Redis store answers it; `Timelines` holds one instant, so a reference
    # for an earlier one is a `Timelines` fed the events recorded by then.
    as_of: str | None = None


class Timelines:
    """The whole read model in memory: the reference for tests, and small tools."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        self.history: dict[str, list[Version]] = {}
        self.aliases: dict[str, str] = {}

    def apply(self, event: StoredEvent) -> Change:
        key = target_key(event) or event.key
        current = (self.entries[key], self.history[key]) if key in self.entries else None
        change = fold(event, current)
        if change.entry is not None:
            self.entries[change.key] = change.entry
            self.history[change.key] = change.history
        if change.alias:
            self.aliases[change.alias] = change.key
        return change

    def query(self, q: Query) -> list[Entry]:
        found = [e for e in self.entries.values() if _matches(e, q)]
        return sorted(found, key=sort_key, reverse=q.descending)


def _matches(entry: Entry, q: Query) -> bool:
    names = timelines(entry)
    if q.timeline not in names:
        return False
    if q.with_entity and f"entity:{q.with_entity}" not in names:
        return False
    if q.types and entry.type not in q.types:
        return False
    if entry.status == "retracted" and not q.include_retracted:
        return False
    if q.start and entry.occurred_end < q.start:
        return False
    return not (q.end and entry.occurred_start > q.end)
