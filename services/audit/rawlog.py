"""The raw log, page by page, exactly as stored: for verifiers outside the service.

`event` is the stored field verbatim (the bytes the chain hashes, as UTF-8
text), so an external check is sha256(previous hash || event) and nothing else.
Entries not in our layout are returned too, with whatever fields they carry.
"""

from __future__ import annotations

from typing import Any

import msgspec

from services.log import keys
from services.log.reader import RawRange

MAX_LIMIT = 10_000


class RawEntry(msgspec.Struct, omit_defaults=True):
    id: str  # the stream id: "<sequence>-0" for our entries
    event: str | None = None
    hash: str | None = None
    other_fields: dict[str, str] | None = None  # only on entries not in our layout


class RawPage(msgspec.Struct):
    partition: int
    entries: list[RawEntry]
    next_after: int | None  # pass as `after` for the next page; null at the end


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace")


def raw_entry(stream_id: bytes, fields: list[bytes]) -> RawEntry:
    """`fields` as XRANGE sends them, `[name, value, ...]`. The first `event` and `hash`
    are the entry's (as `redis-cli XRANGE` shows them); a repeat of either goes to
    `other_fields`, like any other name, so the entry shows as not in our layout."""
    entry = RawEntry(_text(stream_id))
    others = {}
    for name, value in zip(fields[::2], fields[1::2], strict=False):
        if name == b"event" and entry.event is None:
            entry.event = _text(value)
        elif name == b"hash" and entry.hash is None:
            entry.hash = _text(value)
        else:
            others[_text(name)] = _text(value)
    entry.other_fields = others or None
    return entry


LAST_OF_SEQUENCE = 2**64 - 1  # the largest second part a stream id can have


async def read_page(client: Any, partition: int, after: int, limit: int) -> RawPage:
    """Entries whose sequence (the id's first part) is above `after` (for 0, any with
    sequence 0 too), `limit` of them and then any left with the last one's sequence.

    A page ends between two sequences because the next one starts at `after + 1`:
    ending inside one would skip an entry injected as `<n>-1` beside our `<n>-0`,
    and an outside verifier would never see it. (Beyond MAX_LIMIT entries sharing
    one sequence the rest are still skipped; `audit verify` reads every entry.)"""
    read, key = RawRange(client), keys.log(partition)
    # Entries injected as `0-<n>` come first, apart: a page of them alone would give
    # next_after 0, the same page again.
    zeroes = await read(key, "-", f"0-{LAST_OF_SEQUENCE}", MAX_LIMIT) if not after else []
    page = await read(key, f"{after + 1}-0", "+", limit)
    last = None
    if len(page) == limit:
        last_id = page[-1][0]
        last = int(last_id.split(b"-")[0])
        page += await read(key, b"(" + last_id, f"{last}-{LAST_OF_SEQUENCE}", MAX_LIMIT)
    return RawPage(partition, [raw_entry(i, f) for i, f in zeroes + page], last)
