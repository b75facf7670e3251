"""What a batch of changes writes to the read model: the apply script's argument.

`encode_change` turns one folded change into a record; `encode_batch` packs a
partition's records into one payload for projections/apply.lua. Writes that
commute are grouped across the batch, because the script's cost is per
`redis.call`, not per byte: every new entry's members go into one ZADD per
timeline, documents into one HSET, spans, names and kinds into one read and one
write each. Amendments stay one record each, applied in log order after the
grouped writes: an amendment's target precedes it in the log, and no other
event of the batch touches that target.

Pure: no I/O.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import msgspec

from events.stored import parse_position
from projections import asof
from projections.entry import Version, entry_encoder, member, span_days, timelines
from projections.fold import Change

_history_encoder = msgspec.json.Encoder()
_packer = msgspec.msgpack.Encoder()

# A rebuild holds back a batch's members of a timeline from this many on: one that gets
# fewer is small, and its insertions gain nothing from waiting to be sorted.
HOLD_FROM = 8

# Fields of a record (encode_change), as apply.lua numbers them from 1.
SEQUENCE, KEY, MEMBER, DOC, TIMELINES, OLD_MEMBER, OLD_TIMELINES, SPAN, HISTORY = range(9)
NAMES, ALIAS, NAME_STAMP = 9, 10, 11


def _name_stamp(version: Version) -> str:
    """Recorded time, then position: a total order over every event of the log."""
    partition, sequence = parse_position(version.position)
    return f"{asof.stamp(version.recordedtime)}{partition:05d}{sequence:012d}"


def encode_change(sequence: int, change: Change) -> list[Any]:
    """One change as the apply script reads it (msgpack strings: Lua's cmsgpack has no bin).

    {sequence, key, member, doc, timelines, old_member, old_timelines, span, history,
     names {{id, name, kind}}, alias, name_stamp, ever_suffix, old_open_suffix,
     old_closed_suffix, old_doc_sequence}
    The ever suffixes (projections/asof.py) are "" where a version has no place in the
    as-of index: an entry enters it with its first amendment, its first version closed.
    """
    new, old, history = change.entry, change.previous, change.history
    this = history[-1] if history else None
    added = asof.stamp(this.recordedtime) if this else ""
    # Only amended entries have versions in the as-of index (projections/asof.py): an
    # entry never amended is as-of visible from the recorded time its live member holds.
    ever_new = (asof.suffix(added, asof.OPEN, sequence)
                if new and this and asof.amended(new.status) else "")
    old_open = old_closed = ""
    old_sequence = 0
    if old is not None and len(history) >= 2:
        before = history[-2]
        old_sequence = parse_position(before.position)[1]
        old_added = asof.stamp(before.recordedtime)
        if asof.amended(old.status):
            old_open = asof.suffix(old_added, asof.OPEN, old_sequence)
        old_closed = asof.suffix(old_added, added, old_sequence)
    return [
        sequence, change.key,
        member(new) if new else "", entry_encoder.encode(new).decode() if new else "",
        timelines(new) if new else [],
        member(old) if old else "", timelines(old) if old else [],
        span_days(new) if new else 0,
        # An entry's first version is the entry itself: a history is kept once amended.
        _history_encoder.encode(history).decode() if len(history) > 1 else "",
        [[i, n or "", k or ""] for i, n, k in change.names], change.alias or "",
        _name_stamp(this) if this else "", ever_new, old_open, old_closed, old_sequence,
    ]


def _is_new(record: list[Any]) -> bool:
    """A new entry (no earlier version, no alias): its writes commute with the batch's."""
    return bool(record[DOC]) and not record[OLD_MEMBER] and not record[ALIAS]


def _latest(seen: dict[str, tuple[str, str]], ident: str, value: str, at: str) -> None:
    # `>=`: of two references in one event (same stamp), the later one wins, as in log order.
    if value and (ident not in seen or at >= seen[ident][1]):
        seen[ident] = (value, at)


def _flat(seen: dict[str, tuple[str, str]]) -> list[str]:
    return [x for ident, (value, at) in seen.items() for x in (ident, value, at)]


def encode_batch(records: list[list[Any]], held: dict[str, list[str]] | None = None) -> bytes:
    """The apply script's payload for consecutive records of one partition.

    {first sequence, last sequence, {{timeline, member...}...}, {key, doc...},
     {amendment record...}, {timeline, span...}, {id, name, stamp...}, {id, kind, stamp...}}
    With `held` (a rebuild's, projections/deferred.py), the new entries' members of each
    timeline that gets at least HOLD_FROM of them go there instead of into the payload.
    """
    members: dict[str, list[str]] = {}
    docs: list[str] = []
    amendments: list[list[Any]] = []
    spans: dict[str, int] = {}
    names: dict[str, tuple[str, str]] = {}
    kinds: dict[str, tuple[str, str]] = {}
    for record in records:
        if _is_new(record):
            for name in record[TIMELINES]:
                members.setdefault(name, []).append(record[MEMBER])
            docs += (record[KEY], record[DOC])
        elif record[DOC] or record[ALIAS]:
            amendments.append(record)
        if record[DOC]:
            for name in record[TIMELINES]:
                spans[name] = max(spans.get(name, -1), record[SPAN])
        for ident, name, kind in record[NAMES]:
            _latest(names, ident, name, record[NAME_STAMP])
            _latest(kinds, ident, kind, record[NAME_STAMP])
    if held is not None:
        held.update((name, found) for name, found in members.items() if len(found) >= HOLD_FROM)
    return _packer.encode([
        records[0][SEQUENCE], records[-1][SEQUENCE],
        [[name, *found] for name, found in members.items() if held is None or name not in held],
        docs, amendments,
        [x for name, span in spans.items() for x in (name, span)],
        _flat(names), _flat(kinds),
    ])


class Fresh(NamedTuple):
    """An entry as a batch left it, for the live feed."""

    doc: str
    timelines: list[str]
    was: list[str]  # the timelines it was on before the batch

    @property
    def left(self) -> list[str]:
        """The timelines it was on before the batch, and is not any more."""
        return [name for name in self.was if name not in self.timelines]


def fresh_entries(records: list[list[Any]]) -> dict[str, Fresh]:
    """Entry key -> the entry as the batch left it, for every entry the batch changed."""
    was: dict[str, list[str]] = {}
    for r in records:  # an entry's first record holds where it was before the batch
        was.setdefault(r[KEY], r[OLD_TIMELINES])
    return {r[KEY]: Fresh(r[DOC], r[TIMELINES], was[r[KEY]]) for r in records if r[DOC]}


def merge_fresh(into: dict[str, Fresh], later: dict[str, Fresh]) -> None:
    """Add the entries a later batch left, where each was before the earlier one."""
    for key, now in later.items():
        into[key] = now._replace(was=into[key].was) if key in into else now


def vacated(records: list[list[Any]]) -> set[tuple[str, str]]:
    """(timeline, member): the earlier members the records' amendments remove."""
    return {(name, r[OLD_MEMBER]) for r in records if r[OLD_MEMBER] for name in r[OLD_TIMELINES]}
