"""The read model in Redis: per-timeline sorted sets plus entry documents.

Every read-model key carries one hash tag, `{rm}`, so a batch is applied by
one script call and a page is read by one script call, on a single server and
on Redis Cluster alike.

Keys live in a namespace, `timeline:{rm}:<ns>:...` with ns `blue` or `green`,
and `timeline:{rm}:active` names the one in use (blue when unset). Every script
resolves the pointer itself, in the same call as its reads or writes, so the
workers keep projecting into whatever is active and queries read whatever is
active. An audit replay builds the other namespace from the log and a promote
flips the pointer (services/audit/replay.py); a `ReadModel` bound to an
explicit namespace is how the rebuild reads and writes its copy.

Per namespace:
  applied     partition -> last applied sequence
  entries     entry key -> current entry (JSON); history: entry key -> versions
  tl:<name>   live timeline: members in timeline order (projections.entry.member)
  ever:<name> every version ever on the timeline, with when it held (projections.asof)
  superseded  "<entry key>\\x1f<sequence>" -> the entry as that log entry left it,
              kept once a later one replaced it (what `as_of` shows)
  maxspan     timeline -> longest [earliest, latest] span in days (lower bound for `from`)
  names, kinds  entity id -> latest name / kind by recorded time; stamps: when
  aliases     amendment key -> the entry key it amended
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from pathlib import Path
from typing import Any

import msgspec
from redis.commands.core import AsyncScript

from events.stored import event_key, parse_position
from projections import asof
from projections.entry import (
    Entry,
    EntryFacts,
    Version,
    entry_decoder,
    facts_decoder,
    first_history,
    history_decoder,
)
from projections.fold import Query

TAG = "{rm}"
BASE = f"timeline:{TAG}:"
ACTIVE = BASE + "active"
FENCE = BASE + "fence"
NAMESPACES = ("blue", "green")
DEFAULT_NAMESPACE = "blue"
SCAN_BUDGET = 20_000
FENCE_POLL_SECONDS = 0.005


_packer = msgspec.msgpack.Encoder()


class BadCursor(ValueError):
    pass


class Page(msgspec.Struct):
    entries: list[Entry]
    next_cursor: str | None


def namespace_key(namespace: str, name: str) -> str:
    """A key of one namespace, e.g. ("green", "entries") or ("blue", "tl:all")."""
    return f"{BASE}{namespace}:{name}"


def other_namespace(namespace: str) -> str:
    return NAMESPACES[1] if namespace == NAMESPACES[0] else NAMESPACES[0]


def _script(client: Any, name: str) -> AsyncScript:
    script: AsyncScript = client.register_script(Path(__file__).with_name(name).read_text())
    return script


def _compact(day: dt.date) -> str:
    """YYYYMMDD, zero-padded like the members (strftime does not pad years < 1000)."""
    return day.isoformat().replace("-", "")


def _chunks(items: list[str], size: int = 1000) -> list[list[str]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class ReadModel:
    """Reads and writes the timelines of one Redis (or one cluster slot).

    `namespace=None` follows the active pointer (workers, queries); a name binds
    this instance to that copy (the audit rebuild).
    """

    def __init__(self, client: Any, namespace: str | None = None) -> None:
        self.client = client
        self.namespace = namespace
        self._apply = _script(client, "apply.lua")
        self._page = _script(client, "page.lua")
        self._read = _script(client, "read.lua")
        self._fill = _script(client, "fill.lua")
        # The namespace each partition's last `state` read from: `apply` refuses a
        # batch folded from a copy that stopped being active in between.
        self._state_from: dict[int, str] = {}

    async def _call(self, op: str, *args: Any) -> list[Any]:
        reply: list[Any] = await self._read(
            keys=[ACTIVE, FENCE], args=[BASE, self.namespace or "", op, *args])
        return reply

    async def active(self) -> str:
        """The namespace queries read now."""
        if self.namespace is not None:
            return self.namespace
        value = await self.client.get(ACTIVE)
        return _text(value) if value is not None else DEFAULT_NAMESPACE

    async def apply(self, partition: int, payload: bytes, stateless: bool = False
                    ) -> tuple[str, int]:
        """Apply one batch (projections.writes.encode_batch); ("ok"|"done"|"gap"|"stale"|
        "fenced", applied). `stateless`: folded without a `state` read, so the script
        itself refuses while a promote holds the fence (apply.lua)."""
        expected = self._state_from.pop(partition, "") if self.namespace is None else ""
        fenced = "1" if stateless and self.namespace is None else "0"
        reply = await self._apply(
            keys=[ACTIVE, FENCE],
            args=[BASE, self.namespace or "", expected, partition, payload, fenced])
        return _text(reply[0]), int(reply[1])

    async def add_members(self, groups: list[Any]) -> None:
        """Add members to this (rebuild's) namespace's timelines: [timeline, [member...],
        timeline, [member...], ...]. Score 0, as `apply` writes them."""
        if self.namespace is None:
            raise ValueError("only a read model bound to a namespace takes members directly")
        await self._fill(keys=[ACTIVE], args=[BASE, self.namespace, _packer.encode(groups)])

    async def state(
        self, partition: int, keys: list[str]
    ) -> tuple[int, dict[str, tuple[Entry, list[Version]]]]:
        """The applied sequence of `partition` and the current state of `keys`."""
        fenced = "1" if self.namespace is None else "0"
        while True:
            reply = await self._call("state", fenced, partition, *keys)
            if _text(reply[1]) != "fenced":
                break
            await asyncio.sleep(FENCE_POLL_SECONDS)
        namespace, applied = _text(reply[0]), int(reply[1])
        if self.namespace is None:
            self._state_from[partition] = namespace
        found: dict[str, tuple[Entry, list[Version]]] = {}
        if keys:
            for key, doc, hist in zip(keys, reply[2], reply[3], strict=True):
                if doc is not None:
                    found[key] = _with_history(doc, hist)
        return applied, found

    async def applied(self) -> dict[int, int]:
        raw = (await self._call("applied"))[1]
        return {int(raw[i]): int(raw[i + 1]) for i in range(0, len(raw), 2)}

    async def page(self, q: Query, limit: int, cursor: str | None = None) -> Page:
        docs, next_cursor = await self.page_docs(q, limit, cursor)
        return Page([entry_decoder.decode(doc) for doc in docs], next_cursor)

    async def page_docs(
        self, q: Query, limit: int, cursor: str | None = None
    ) -> tuple[list[bytes], str | None]:
        """A page as the stored entry documents (JSON of `Entry`, not decoded), and
        the cursor of the next page: what the HTTP route passes through as is."""
        order = "desc" if q.descending else "asc"
        tag = order + ("@" if q.as_of else "")  # a live cursor means nothing as of a time
        # "": page.lua derives the lower bound from `from` and the timeline's longest
        # span, in the same call (and namespace) as the walk.
        low, high = "" if q.start else "-", _upper_bound(q.end)
        if cursor:
            after, shown = decode_cursor(cursor, tag)
            # As of an instant the walk also meets an entry's other versions, and the
            # cursor may be one the page turned away: then it stays the bound itself. Once
            # the entry was shown (only one version holds at an instant), all its versions
            # are passed: an amendment recorded since adds versions beside the cursor.
            past = "(" + after if q.as_of and not shown else past_entry(after, q.descending)
            if q.descending:
                high = past
            else:
                low = past
        types = "|" + "|".join(q.types) + "|" if q.types else ""
        reply = await self._page(
            keys=[ACTIVE],
            args=[BASE, self.namespace or "", q.timeline,
                  f"entity:{q.with_entity}" if q.with_entity else "", order, low, high,
                  (q.start or "").replace("-", ""), types,
                  "1" if q.include_retracted else "0", limit, SCAN_BUDGET,
                  asof.stamp(q.as_of) if q.as_of else ""],
        )
        docs = [doc for doc in reply[1] if doc is not None]
        if docs and isinstance(docs[0], str):  # a client that decodes replies
            docs = [doc.encode() for doc in docs]
        last = _text(reply[0])
        if not last:
            return docs, None
        # Only an `as_of` walk meets an entry's other versions (live pages always pass the
        # whole entry): there alone is the last document decoded to say what was shown.
        shown = bool(q.as_of and docs) and _shows(docs[-1], last)
        return docs, encode_cursor(last, tag, shown)

    async def entry(
        self, source: str, ident: str, as_of: str | None = None
    ) -> tuple[Entry, list[Version]] | None:
        """An entry and its history; `as_of` (RFC 3339 UTC): as they were known then."""
        _, key, doc, hist = await self._call("entry", event_key(source, ident))
        if doc is None:
            return None
        entry, history = _with_history(doc, hist)
        if as_of is None:
            return entry, history
        at = asof.stamp(as_of)
        known: list[Version] = []
        for version in history:
            if asof.stamp(version.recordedtime) > at:
                break
            known.append(version)
        if not any(v.source == source and v.id == ident for v in known):
            return None  # not recorded by then (nor, if an amendment's id, the amendment)
        if len(known) == len(history):
            return entry, history
        sequence = parse_position(known[-1].position)[1]
        old = (await self._call("superseded", asof.superseded_field(_text(key), sequence)))[1]
        if old is None:
            raise LookupError(f"no superseded copy of {_text(key)!r} at {sequence}: "
                              "the read model predates the as-of index; replay and promote")
        return entry_decoder.decode(old), known

    async def names(self, ids: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for chunk in _chunks(ids):  # Lua's unpack() has a limit of a few thousand
            values = (await self._call("names", *chunk))[1]
            found.update((i, _text(v)) for i, v in zip(chunk, values, strict=True) if v)
        return found

    async def kind(self, ident: str) -> str | None:
        value = (await self._call("kind", ident))[1]
        return _text(value) if value is not None else None

    async def all_members(self, timeline: str) -> list[str]:
        return [_text(m) for m in (await self._call("members", timeline))[1]]

    async def entries_of(self, keys: list[str]) -> list[Entry]:
        return [entry_decoder.decode(doc) for doc in await self.docs_of(keys)]

    async def facts_of(self, keys: list[str]) -> list[EntryFacts]:
        return [facts_decoder.decode(doc) for doc in await self.docs_of(keys)]

    async def docs_of(self, keys: list[str]) -> list[bytes]:
        """The stored documents of these entries, in order; an unknown key has none."""
        found: list[bytes] = []
        for chunk in _chunks(keys):
            found += [d for d in (await self._call("docs", *chunk))[1] if d is not None]
        return found

    async def timeline_names(self) -> list[str]:
        """Every timeline that ever had an entry."""
        return sorted(_text(n) for n in (await self._call("timelines"))[1])


def _with_history(doc: bytes, hist: bytes | None) -> tuple[Entry, list[Version]]:
    entry = entry_decoder.decode(doc)
    return entry, history_decoder.decode(hist) if hist else first_history(entry)


def _upper_bound(end: str | None) -> str:
    """The upper lex bound of a walk: members starting before the day after `to`."""
    if not end:
        return "+"
    day = dt.date.fromisoformat(end)
    return "(" + _compact(day + dt.timedelta(days=1)) if day < dt.date.max else "+"


_SHOWN = "!"  # after a cursor's order: the page showed the entry of its last member


def encode_cursor(last_member: str, order: str, shown: bool = False) -> str:
    raw = f"{order}{_SHOWN if shown else ''}\x1e{last_member}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, order: str) -> tuple[str, bool]:
    """The last member a cursor names, and whether its page showed that member's entry."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise BadCursor("cursor is not one this server issued") from None
    kind, sep, last = raw.partition("\x1e")
    shown = kind.endswith(_SHOWN)
    if not sep or kind.removesuffix(_SHOWN) != order:
        raise BadCursor("cursor does not belong to this query's order")
    return last, shown


class _Identity(msgspec.Struct):
    source: str
    id: str


_identity = msgspec.json.Decoder(_Identity)


def _shows(doc: bytes, member: str) -> bool:
    """Whether the document is of the member's entry: a page's members of one entry
    come together, so the page showed the cursor's entry if its last document is it."""
    shown = _identity.decode(doc)
    return f"{shown.source}\x1f{shown.id}" == key_of_member(member)


def past_entry(member: str, descending: bool) -> str:
    """The exclusive lex bound just past every member of `member`'s entry, whatever its
    tail (latest day, status, type) is now: an entry amended between two pages (a
    correction turns its status flag from a to c) must not come back on the next one.

    Members order by their head, up to `source\x1fid`; each tail starts with a digit
    after one more \x1f, so `head\x1f` is below all of them and `head\x1f\x7f` above."""
    cut = member.find("\x1f", member.find("\x1f", 29) + 1)
    if cut < 0:  # not a member this server wrote: as it is
        return "(" + member
    head = member[:cut + 1]
    return "(" + head if descending else "(" + head + "\x7f"


def key_of_member(m: str) -> str:
    return m[29:].rsplit("\x1f", 1)[0]
