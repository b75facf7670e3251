"""The read model in Redis: per-timeline sorted sets plus entry documents.

Every read-model key carries one hash tag, `{rm}`, so a batch is applied by
one script call and a page is read by one script call, on a single server and
on Redis Cluster alike.
"""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path
from typing import Any

import msgspec
from redis.commands.core import AsyncScript

from events.stored import event_key
from projections.entry import (
    Entry,
    Version,
    entry_decoder,
    entry_encoder,
    history_decoder,
    member,
    span_days,
    timelines,
)
from projections.fold import Change, Query

TAG = "{rm}"
PREFIX = f"timeline:{TAG}:tl:"
APPLIED = f"timeline:{TAG}:applied"
ENTRIES = f"timeline:{TAG}:entries"
HISTORY = f"timeline:{TAG}:history"
MAXSPAN = f"timeline:{TAG}:maxspan"
NAMES = f"timeline:{TAG}:names"
KINDS = f"timeline:{TAG}:kinds"
ALIASES = f"timeline:{TAG}:aliases"
SCAN_BUDGET = 20_000

_packer = msgspec.msgpack.Encoder()
_history_encoder = msgspec.json.Encoder()


class BadCursor(ValueError):
    pass


class Page(msgspec.Struct):
    entries: list[Entry]
    next_cursor: str | None


def _script(client: Any, name: str) -> AsyncScript:
    script: AsyncScript = client.register_script(Path(__file__).with_name(name).read_text())
    return script


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def encode_change(sequence: int, change: Change) -> list[Any]:
    """One change as the apply script reads it (msgpack strings: Lua's cmsgpack has no bin)."""
    new, old = change.entry, change.previous
    return [
        sequence, change.key,
        member(new) if new else "", entry_encoder.encode(new).decode() if new else "",
        timelines(new) if new else [],
        member(old) if old else "", timelines(old) if old else [],
        span_days(new) if new else 0, _history_encoder.encode(change.history).decode(),
        [[i, n or "", k or ""] for i, n, k in change.names], change.alias or "",
    ]


class ReadModel:
    """Reads and writes the timelines of one Redis (or one cluster slot)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._apply = _script(client, "apply.lua")
        self._page = _script(client, "page.lua")

    async def apply(self, partition: int, changes: list[list[Any]]) -> tuple[str, int]:
        reply = await self._apply(
            keys=[APPLIED, ENTRIES, HISTORY, MAXSPAN, NAMES, KINDS, ALIASES],
            args=[partition, PREFIX, _packer.encode(changes)],
        )
        return _text(reply[0]), int(reply[1])

    async def state(
        self, partition: int, keys: list[str]
    ) -> tuple[int, dict[str, tuple[Entry, list[Version]]]]:
        """The applied sequence of `partition` and the current state of `keys`."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hget(APPLIED, partition)
        if keys:
            pipe.hmget(ENTRIES, keys)
            pipe.hmget(HISTORY, keys)
        replies = await pipe.execute()
        found: dict[str, tuple[Entry, list[Version]]] = {}
        if keys:
            for key, doc, hist in zip(keys, replies[1], replies[2], strict=True):
                if doc is not None:
                    found[key] = (entry_decoder.decode(doc), history_decoder.decode(hist))
        return int(replies[0] or 0), found

    async def applied(self) -> dict[int, int]:
        raw = await self.client.hgetall(APPLIED)
        return {int(k): int(v) for k, v in raw.items()}

    async def page(self, q: Query, limit: int, cursor: str | None = None) -> Page:
        order = "desc" if q.descending else "asc"
        low, high = await self._bounds(q)
        if cursor:
            after = decode_cursor(cursor, order)
            if q.descending:
                high = "(" + after
            else:
                low = "(" + after
        types = "|" + "|".join(q.types) + "|" if q.types else ""
        with_set = PREFIX + f"entity:{q.with_entity}" if q.with_entity else PREFIX + q.timeline
        reply = await self._page(
            keys=[PREFIX + q.timeline, ENTRIES, with_set],
            args=[order, low, high, (q.start or "").replace("-", ""), types,
                  "1" if q.include_retracted else "0", "1" if q.with_entity else "0",
                  limit, SCAN_BUDGET],
        )
        entries = [entry_decoder.decode(doc) for doc in reply[1:] if doc is not None]
        last = _text(reply[0])
        return Page(entries, encode_cursor(last, order) if last else None)

    async def _bounds(self, q: Query) -> tuple[str, str]:
        low, high = "-", "+"
        if q.start:
            span = int(await self.client.hget(MAXSPAN, q.timeline) or 0)
            first = dt.date.fromisoformat(q.start) - dt.timedelta(days=span)
            low = "[" + first.strftime("%Y%m%d")
        if q.end:
            after = dt.date.fromisoformat(q.end) + dt.timedelta(days=1)
            high = "(" + after.strftime("%Y%m%d")
        return low, high

    async def entry(self, source: str, ident: str) -> tuple[Entry, list[Version]] | None:
        key = event_key(source, ident)
        key = _text(await self.client.hget(ALIASES, key) or key)
        pipe = self.client.pipeline(transaction=False)
        pipe.hget(ENTRIES, key)
        pipe.hget(HISTORY, key)
        doc, hist = await pipe.execute()
        if doc is None:
            return None
        return entry_decoder.decode(doc), history_decoder.decode(hist)

    async def names(self, ids: list[str]) -> dict[str, str]:
        if not ids:
            return {}
        values = await self.client.hmget(NAMES, ids)
        return {i: _text(v) for i, v in zip(ids, values, strict=True) if v is not None}

    async def kind(self, ident: str) -> str | None:
        value = await self.client.hget(KINDS, ident)
        return _text(value) if value is not None else None

    async def all_members(self, timeline: str) -> list[str]:
        raw = await self.client.zrange(PREFIX + timeline, 0, -1)
        return [_text(m) for m in raw]

    async def entries_of(self, keys: list[str]) -> list[Entry]:
        if not keys:
            return []
        docs = await self.client.hmget(ENTRIES, keys)
        return [entry_decoder.decode(d) for d in docs if d is not None]


def encode_cursor(last_member: str, order: str) -> str:
    raw = f"{order}\x1e{last_member}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, order: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise BadCursor("cursor is not one this server issued") from None
    kind, sep, last = raw.partition("\x1e")
    if not sep or kind != order:
        raise BadCursor("cursor does not belong to this query's order")
    return last


def key_of_member(m: str) -> str:
    return m[29:].rsplit("\x1f", 1)[0]
