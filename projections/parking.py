"""Parked log entries: those whose apply kept failing (a bug, not bad input).

After PARK_ATTEMPTS failed attempts a worker copies the entry with its error
to `timeline:{pN}:parked:<projection>` and records its sequence as applied,
so the partition keeps flowing behind it. The parked stream's entry id is the
log entry's own (`<sequence>-0`), so parking the same entry twice (a crash
between parking and recording) stores it once. The copy is in the partition's
hash slot, beside its log.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from redis.exceptions import ResponseError

PARK_ATTEMPTS = 3


def parked_key(partition: int, projection: str) -> str:
    return f"timeline:{{p{partition}}}:parked:{projection}"


class Parked(msgspec.Struct):
    """One parked entry, as `timeline audit parked` shows it."""

    partition: int
    sequence: int
    projection: str
    error: str
    attempts: int
    parkedtime: str
    source: str | None
    id: str | None
    type: str | None
    event: str  # the log entry's stored event JSON, as it was


class _Ident(msgspec.Struct):
    source: str | None = None
    id: str | None = None
    type: str | None = None


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


async def park(
    client: Any, projection: str, partition: int, sequence: int,
    fields: dict[bytes, bytes], error: BaseException, attempts: int,
) -> bool:
    """Copy a log entry and why it failed to the parked stream; False if it was there already."""
    copy = {
        b"event": fields.get(b"event", b""),
        b"hash": fields.get(b"hash", b""),
        b"error": f"{type(error).__name__}: {error}"[:4000].encode(),
        b"attempts": str(attempts).encode(),
        b"parkedtime": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
        .replace("+00:00", "Z").encode(),
    }
    try:
        await client.xadd(parked_key(partition, projection), copy, id=f"{sequence}-0")
    except ResponseError as exc:
        if "equal or smaller" in str(exc):
            return False
        raise
    return True


async def parked(client: Any, partitions: int, projection: str) -> list[Parked]:
    """Every parked entry of every partition, in partition then log order."""
    found = []
    for partition in range(partitions):
        for ident, fields in await client.xrange(parked_key(partition, projection), "-", "+"):
            event = _text(fields.get(b"event", b""))
            try:
                named = msgspec.json.decode(event, type=_Ident)
            except (msgspec.DecodeError, msgspec.ValidationError):
                named = _Ident()
            found.append(Parked(
                partition=partition, sequence=int(_text(ident).split("-")[0]),
                projection=projection, error=_text(fields.get(b"error", b"")),
                attempts=int(fields.get(b"attempts", b"0")),
                parkedtime=_text(fields.get(b"parkedtime", b"")),
                source=named.source, id=named.id, type=named.type, event=event))
    return found


async def unpark(client: Any, projection: str, partition: int, sequence: int) -> int:
    """Remove one parked entry (once it has been applied another way)."""
    return int(await client.xdel(parked_key(partition, projection), f"{sequence}-0"))
