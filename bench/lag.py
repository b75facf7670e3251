"""End-to-end lag: from a publish's acknowledgement to the moment the read
model has applied that event (and a timeline query would return it).

Batches are POSTed on a fixed schedule (open loop) so the offered rate holds
whatever the service does. Each acknowledged event's (partition, sequence)
waits in a per-partition queue; a poller reads the read model's applied
sequences every millisecond and retires every event they cover.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

import msgspec

from bench.publish_http import BATCH_TYPE, Pool
from projections.store import ReadModel
from services.redis import connection

POLL_SECONDS = 0.001


class _Ack(msgspec.Struct):
    partition: int
    sequence: int | None = None


class _Reply(msgspec.Struct):
    results: list[_Ack]


_reply = msgspec.json.Decoder(_Reply)


async def lag(base: str, url: str, bodies: list[bytes], per_second: float) -> dict[str, Any]:
    """POST `bodies` (batches) at `per_second` batches a second; lag per event in ms."""
    client = connection.client(url)
    read_model = ReadModel(client)
    waiting: dict[int, deque[tuple[int, float]]] = {}
    lags: list[float] = []
    errors: list[str] = []
    sending = True
    pool = Pool(base)

    async def publish(body: bytes) -> None:
        conn = await pool.take()
        status, reply = await conn.request("POST", "/v1/events", body, BATCH_TYPE)
        acked = time.perf_counter()
        pool.give(conn)
        if status != 200:
            errors.append(f"{status} {reply[:300].decode(errors='replace')}")
            return
        for ack in _reply.decode(reply).results:
            if ack.sequence is not None:
                waiting.setdefault(ack.partition, deque()).append((ack.sequence, acked))

    async def poll() -> None:
        while sending or any(waiting.values()):
            applied = await read_model.applied()
            seen = time.perf_counter()
            for partition, sequence in applied.items():
                queue = waiting.get(partition)
                while queue and queue[0][0] <= sequence:
                    lags.append((seen - queue.popleft()[1]) * 1000)
            await asyncio.sleep(POLL_SECONDS)

    poller = asyncio.create_task(poll())
    tasks = []
    t0 = time.perf_counter()
    try:
        for i, body in enumerate(bodies):
            delay = t0 + i / per_second - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(publish(body)))
        await asyncio.gather(*tasks)
        offered_for = time.perf_counter() - t0
        sending = False
        # the backlog drains at the projection's pace: allow it ten times the offered window
        await asyncio.wait_for(poller, timeout=120 + 10 * offered_for)
    finally:
        sending = False
        poller.cancel()
        await pool.close()
        await client.aclose()
    return {"lags": lags, "errors": errors, "seconds": offered_for}
