"""The read model's own limit: what the layout DESIGN 2 fixes ("per-timeline
sorted sets + entry documents") costs the server to write, with no logic.

Each event's entry is built by the projection's own fold before the clock
starts; what is timed is writing it as the apply script groups it, per batch of
500 events: one ZADD per timeline (score 0, the entry's member) and one HSET of
the documents, sent over a bare RESP connection, one batch in flight. Nothing
else the projection writes (names, spans, positions, the live feed, the
acknowledgements) is included, so no projection of this layout can be faster on
this server, and no store holding it can be smaller than the log plus this.
"""

from __future__ import annotations

import time

from bench.resp import RespConnection, pack
from events.stored import stored_decoder
from projections.entry import entry_encoder, member, timelines
from projections.fold import fold

PREFIX = b"bench:layout:"
BATCH = 500

Batch = tuple[bytes, int]  # packed commands, how many


def batches(payloads: list[tuple[bytes, bytes]], size: int = BATCH) -> list[Batch]:
    """The layout's writes for stored events (bench.events.stored_payloads), packed
    per batch of `size` events."""
    return [_batch(payloads[start:start + size]) for start in range(0, len(payloads), size)]


def _batch(payloads: list[tuple[bytes, bytes]]) -> Batch:
    members: dict[str, list[bytes]] = {}
    docs: list[bytes] = []
    for stored, _ in payloads:
        event = stored_decoder.decode(stored)
        entry = fold(event, None).entry
        if entry is None:  # an amendment: it writes no new entry
            continue
        sort_member = member(entry).encode()
        for name in timelines(entry):
            members.setdefault(name, []).append(sort_member)
        docs += (event.key.encode(), entry_encoder.encode(entry))
    commands = [pack(b"ZADD", PREFIX + b"tl:" + name.encode(),
                     *(part for m in found for part in (b"0", m)))
                for name, found in members.items()]
    if docs:
        commands.append(pack(b"HSET", PREFIX + b"entries", *docs))
    return b"".join(commands), len(commands)


async def write(url: str, prepared: list[Batch]) -> float:
    """Seconds to write every batch, each sent whole and its replies awaited."""
    conn = await RespConnection.open(url)
    try:
        started = time.perf_counter()
        for commands, count in prepared:
            await conn.pipeline(commands, count)
        return time.perf_counter() - started
    finally:
        await conn.close()
