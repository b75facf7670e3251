"""Compare two copies (namespaces) of the read model: per timeline, per entry,
field by field.

The walking is server-side (compare.lua: one call per chunk of a hash, one call
per batch of many timelines, only the differences come back); turning raw
differences into readable ones is pure (`describe`, `field_differences`) and
tested without a server.

A difference says what the *live* copy has wrong relative to the rebuilt one:
`differs` (both have it, with other values), `extra-live` (only live has it),
`missing-live` (only the rebuild has it).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import msgspec

from projections import asof
from projections.store import ReadModel, key_of_member, namespace_key
from services.redis import scripts

CHUNK = 1000  # hash fields per HSCAN, zset members per range read
TIMELINES_PER_CALL = 1000  # timeline keys named per zsets call (x2 families)
BUDGET = 20_000  # zset members one call reads at most (keeps each call short)
# read-model hash -> the scope a difference in it is reported under
HASHES = {"entries": "entry", "history": "history", "superseded": "superseded-version",
          "aliases": "alias", "maxspan": "span", "names": "name", "kinds": "kind",
          "stamps": "name-stamp"}
ZSETS = {"tl:": "timeline", "ever:": "as-of-index"}
SCAN_COUNT = 1000  # keys the server looks at per SCAN call
JSON_SCOPES = ("entry", "history", "superseded-version")


class FieldDifference(msgspec.Struct):
    live: Any
    rebuilt: Any


class Difference(msgspec.Struct, omit_defaults=True):
    scope: str
    problem: str  # "differs" | "extra-live" | "missing-live"
    key: str  # readable: "source id", "source id @sequence", an entity id or a timeline
    source: str | None = None
    id: str | None = None
    timeline: str | None = None
    fields: dict[str, FieldDifference] | None = None
    live: Any = None
    rebuilt: Any = None


_json = msgspec.json.Decoder()
_packer = msgspec.msgpack.Encoder()


def _text(value: bytes | str | None) -> str | None:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _decoded(value: str | None) -> Any:
    if value is None:
        return None
    try:
        return _json.decode(value)
    except msgspec.DecodeError:
        return value


def _member(value: bytes | str) -> str:
    return _text(value) or ""


def field_differences(live: Any, rebuilt: Any) -> dict[str, FieldDifference]:
    """Top-level fields that differ; a list of objects (a history) by index and field."""
    if isinstance(live, dict) and isinstance(rebuilt, dict):
        return {name: FieldDifference(live.get(name), rebuilt.get(name))
                for name in sorted(set(live) | set(rebuilt)) if live.get(name) != rebuilt.get(name)}
    if isinstance(live, list) and isinstance(rebuilt, list):
        found: dict[str, FieldDifference] = {}
        for i in range(max(len(live), len(rebuilt))):
            a = live[i] if i < len(live) else None
            b = rebuilt[i] if i < len(rebuilt) else None
            if a == b:
                continue
            if isinstance(a, dict) and isinstance(b, dict):
                found.update({f"[{i}].{k}": v for k, v in field_differences(a, b).items()})
            else:
                found[f"[{i}]"] = FieldDifference(a, b)
        return found
    return {"": FieldDifference(live, rebuilt)}


def _entry_names(key: str) -> tuple[str, str]:
    source, _, ident = key.partition("\x1f")
    return source, ident


def describe_hash(
    scope: str, field: str, problem: str, live: str | None, rebuilt: str | None
) -> Difference:
    """One differing field of a read-model hash, named for people."""
    if scope in ("entry", "history", "alias"):
        source, ident = _entry_names(field)
        diff = Difference(scope, problem, f"{source} {ident}", source=source, id=ident)
    elif scope == "superseded-version":
        entry, _, sequence = field.rpartition("\x1f")
        source, ident = _entry_names(entry)
        diff = Difference(scope, problem, f"{source} {ident} @{sequence}", source=source,
                          id=ident)
    elif scope == "span":
        diff = Difference(scope, problem, field, timeline=field)
    else:
        diff = Difference(scope, problem, field)
    if problem == "differs" and scope in JSON_SCOPES:
        diff.fields = field_differences(_decoded(live), _decoded(rebuilt))
    else:
        diff.live, diff.rebuilt = live, rebuilt
    return diff


def _about_member(scope: str, timeline: str, problem: str, member: str) -> Difference:
    source, ident = _entry_names(key_of_member(member))
    return Difference(scope, problem, f"{timeline}: {source} {ident}", source=source, id=ident,
                      timeline=timeline)


def describe_member(scope: str, timeline: str, problem: str, member: str) -> Difference:
    """A timeline (or as-of index) member that only one copy has."""
    diff = _about_member(scope, timeline, problem, member)
    shown = member
    if scope == "as-of-index":
        _, added, removed, sequence = asof.split(member)
        shown = f"version of sequence {sequence}: held {added} .. " + (
            "now" if removed == asof.OPEN else removed)
    if problem == "extra-live":
        diff.live = shown
    else:
        diff.rebuilt = shown
    return diff


def describe_score(scope: str, timeline: str, member: str, live: float | None,
                   rebuilt: float | None) -> Difference:
    """A member either copy holds with a score other than 0 (its score in each, None
    where absent). Every score is 0, and pages are read in lex order, which needs that:
    a member scored otherwise moves in (or hides others from) the timeline's pages."""
    diff = _about_member(scope, timeline, "differs", member)
    diff.fields = {"score": FieldDifference(live, rebuilt)}
    return diff


def _score(value: bytes | str | None) -> float | None:
    return None if value is None else float(value)


class Comparer:
    """Walks two namespaces of one server and lists their differences."""

    def __init__(self, client: Any, live: str, rebuilt: str) -> None:
        self.client = client
        self.live, self.rebuilt = live, rebuilt
        self._script = scripts.load(client, Path(__file__).with_name("compare.lua"))

    async def everything(self) -> list[Difference]:
        found: list[Difference] = []
        for name, scope in HASHES.items():
            found += await self.hash(name, scope)
        names = set(await ReadModel(self.client, self.live).timeline_names())
        names |= set(await ReadModel(self.client, self.rebuilt).timeline_names())
        names |= await self.stored_timelines(self.live) | await self.stored_timelines(self.rebuilt)
        found += await self.timelines(sorted(names))
        return found

    async def stored_timelines(self, namespace: str) -> set[str]:
        """The names of every timeline and as-of index a copy holds a key for. Every write
        also lists the name in `maxspan`, but a damaged copy is what a replay looks for,
        and a key no list names would otherwise never be compared."""
        prefix = namespace_key(namespace, "")  # no glob characters: matched literally
        names = set()
        async for key in self.client.scan_iter(match=prefix + "*", count=SCAN_COUNT):
            rest = (_text(key) or "")[len(prefix):]
            for family in ZSETS:
                if rest.startswith(family):
                    names.add(rest[len(family):])
        return names

    async def hash(self, name: str, scope: str) -> list[Difference]:
        """The rebuilt copy's fields checked in the live one; then, unless that proved
        the two hold the same fields, the live copy's looked for in the rebuilt one.

        The proof: the rebuilt copy does not change while it is compared, and live
        hashes only ever gain fields (nothing deletes one but dropping a namespace), so
        once every rebuilt field has been found in the live copy, equal lengths mean no
        live field is extra. That second walk was half of the comparison's hashes."""
        live, rebuilt = namespace_key(self.live, name), namespace_key(self.rebuilt, name)
        found: dict[str, Difference] = {}  # HSCAN may return a field twice
        async for field, rebuilt_value, live_value in self._walk(rebuilt, live, "differs"):
            problem = "differs" if live_value is not None else "missing-live"
            found[field] = describe_hash(scope, field, problem, live_value, rebuilt_value)
        lengths = await self._script(keys=[live, rebuilt], args=["lengths"])
        if lengths[0] == lengths[1] and not any(
                d.problem == "missing-live" for d in found.values()):
            return list(found.values())
        async for field, live_value, _ in self._walk(live, rebuilt, "missing"):
            found[field] = describe_hash(scope, field, "extra-live", live_value, None)
        return list(found.values())

    async def _walk(self, a: str, b: str, mode: str
                    ) -> AsyncIterator[tuple[str, str | None, str | None]]:
        """(field, value in a, value in b) for what compare.lua's `mode` reports of a."""
        cursor = "0"
        while True:
            reply = await self._script(keys=[a, b], args=["hash", mode, cursor, CHUNK])
            for item in reply[1]:
                yield (_text(item[0]) or "", _text(item[1]),
                       _text(item[2]) if len(item) > 2 else None)
            cursor = _text(reply[0]) or "0"
            if cursor == "0":
                return

    async def fields(self, name: str, scope: str, fields: Iterable[str]) -> list[Difference]:
        """Only these fields of one hash (a re-check of earlier differences)."""
        wanted = sorted(set(fields))
        if not wanted:
            return []
        pipe = self.client.pipeline(transaction=False)
        pipe.hmget(namespace_key(self.live, name), wanted)
        pipe.hmget(namespace_key(self.rebuilt, name), wanted)
        lives, rebuilts = await pipe.execute()
        found = []
        for field, live, rebuilt in zip(wanted, lives, rebuilts, strict=True):
            if live == rebuilt:
                continue
            problem = ("missing-live" if live is None else "extra-live" if rebuilt is None
                       else "differs")
            found.append(describe_hash(scope, field, problem, _text(live), _text(rebuilt)))
        return found

    async def timelines(self, names: list[str]) -> list[Difference]:
        """Members only one copy's timelines (and as-of indexes) hold, and members
        either holds with a score other than 0, in the order of `names`, families, then
        problems; many timelines per script call."""
        pending = deque((family + name, "-") for name in names for family in ZSETS)
        found: dict[str, tuple[list[str], list[str]]] = {}
        scores: dict[str, list[tuple[str, float | None, float | None]]] = {}
        prefixes = [namespace_key(self.live, ""), namespace_key(self.rebuilt, "")]
        while pending:
            batch = [pending.popleft() for _ in range(min(len(pending), TIMELINES_PER_CALL))]
            walks = _packer.encode(list(itertools.chain(*batch)))
            reply = await self._script(keys=[namespace_key(self.live, "entries")],
                                       args=["zsets", *prefixes, CHUNK, BUDGET, walks])
            for index, only_live, only_rebuilt, cursor, rescored in reply[1:]:
                suffix = batch[index - 1][0]
                scores.setdefault(suffix, []).extend(
                    (_member(m), _score(live), _score(rebuilt)) for m, live, rebuilt in rescored)
                extra, missing = found.setdefault(suffix, ([], []))
                extra += map(_member, only_live)
                missing += map(_member, only_rebuilt)
                if following := _text(cursor):
                    pending.appendleft((suffix, following))
            pending.extendleft(reversed(batch[reply[0]:]))  # what the budget left
        differences: list[Difference] = []
        for name in names:
            for family, scope in ZSETS.items():
                differences += [describe_score(scope, name, *score)
                                for score in scores.get(family + name, [])]
                extra, missing = found.get(family + name, ([], []))
                differences += [describe_member(scope, name, "extra-live", m) for m in extra]
                differences += [describe_member(scope, name, "missing-live", m) for m in missing]
        return differences

    async def recheck(self, differences: list[Difference]) -> list[Difference]:
        """The same comparison, limited to what `differences` are about."""
        by_hash: dict[str, set[str]] = {}
        names: set[str] = set()
        scope_hash = {scope: name for name, scope in HASHES.items()}
        for diff in differences:
            if diff.scope in ZSETS.values():
                names.add(diff.timeline or "")
            else:
                by_hash.setdefault(diff.scope, set()).add(field_of(diff))
        found: list[Difference] = []
        for scope, fields in by_hash.items():
            found += await self.fields(scope_hash[scope], scope, fields)
        return found + await self.timelines(sorted(names))


def field_of(diff: Difference) -> str:
    """The hash field a difference of a hash scope was found under."""
    if diff.source is not None and diff.id is not None:
        entry = f"{diff.source}\x1f{diff.id}"
        if diff.scope == "superseded-version":
            return f"{entry}\x1f{diff.key.rpartition('@')[2]}"
        return entry
    return diff.timeline if diff.scope == "span" and diff.timeline else diff.key
