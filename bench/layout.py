"""The read model's own limit: what the layout DESIGN 2 fixes ("per-timeline
sorted sets + entry documents") costs the server to write, with no logic.

Each event's entry is built by the projection's own fold before the clock
starts; what is timed is writing it as the apply script groups it, per batch of
500 events of one partition (the partitions' batches taken in turn, as the
worker's subscribers deliver them): one ZADD per timeline (score 0, the
entry's member) and one HSET of the documents, sent over a bare RESP
connection with the next batch sent before the last one's replies are read,
so the server is not left waiting on the client. Nothing else the projection
writes (names, spans, positions, the live feed, the acknowledgements) is
included, so no in-order projection of this layout can be faster on this
server, and no store holding it can be smaller than the log plus this.
"""

from __future__ import annotations

import time
from itertools import zip_longest

import msgspec

from bench.resp import RespConnection, pack
from events.stored import StoredEvent, stored_decoder
from projections.fold import fold
from projections.writes import encode_batch, encode_change

# As long as the read model's "timeline:{rm}:blue:", so keys weigh the same.
PREFIX = b"bench:layout:limit:"
BATCH = 500

Batch = tuple[bytes, int]  # packed commands, how many
_payload = msgspec.msgpack.Decoder()


def batches(payloads: list[tuple[bytes, bytes]], size: int = BATCH) -> list[Batch]:
    """The layout's writes for stored events (bench.events.stored_payloads), packed
    per batch of up to `size` events of one partition, the partitions in turn."""
    by_partition: dict[int, list[StoredEvent]] = {}
    for stored, _ in payloads:
        event = stored_decoder.decode(stored)
        by_partition.setdefault(event.partition, []).append(event)
    chunked = [[events[i:i + size] for i in range(0, len(events), size)]
               for events in by_partition.values()]
    return [_batch(chunk) for turn in zip_longest(*chunked) for chunk in turn if chunk]


def _batch(events: list[StoredEvent]) -> Batch:
    # The projection's own grouping (projections/writes.py), read back from the
    # apply script's payload: its new entries' members per timeline and documents.
    records = [encode_change(event.sequence, fold(event, None)) for event in events]
    _, _, members, docs, *_ = _payload.decode(encode_batch(records))
    commands = [pack(b"ZADD", PREFIX + b"tl:" + name.encode(),
                     *(part for m in found for part in (b"0", m.encode())))
                for name, *found in members]
    if docs:
        commands.append(pack(b"HSET", PREFIX + b"entries", *(d.encode() for d in docs)))
    return b"".join(commands), len(commands)


async def write(url: str, prepared: list[Batch]) -> float:
    """Seconds to write every batch, two in flight: each batch is sent before the
    replies of the one before it are read."""
    conn = await RespConnection.open(url)
    try:
        started = time.perf_counter()
        waiting = 0
        for commands, count in prepared:
            await conn.send(commands)
            if waiting:
                await conn.replies(waiting)
            waiting = count
        if waiting:
            await conn.replies(waiting)
        return time.perf_counter() - started
    finally:
        await conn.close()
