"""The physical limits: what any Python publisher or consumer can do against
this server on this machine, with no logic at all.

- publish: XADD of the same payload bytes our log stores (stored event JSON
  and its hash), pipelined 1,000 deep over one connection; measured through
  redis-py's asyncio pipeline and through a bare RESP writer, the better one
  being the limit;
- consume: XREADGROUP COUNT 1000 over the stream so filled, decoding every
  entry into the same struct our projection decodes (msgspec), again through
  redis-py and through bare RESP.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis.asyncio as aioredis

from bench.resp import RespConnection, pack
from events.stored import stored_decoder
from services.redis import loop

STREAM = "bench:limit"
GROUP = "bench"
DEPTH = 1000


async def xadd_redis_py(url: str, payloads: list[tuple[bytes, bytes]]) -> float:
    """Seconds to XADD every payload through redis-py, 1,000 per pipeline."""
    client = aioredis.Redis.from_url(url)
    try:
        started = time.perf_counter()
        for start in range(0, len(payloads), DEPTH):
            pipe = client.pipeline(transaction=False)
            for event, digest in payloads[start:start + DEPTH]:
                pipe.xadd(STREAM, {"event": event, "hash": digest})
            await pipe.execute()
        return time.perf_counter() - started
    finally:
        await client.aclose()


async def xadd_resp(url: str, payloads: list[tuple[bytes, bytes]]) -> float:
    """Seconds to XADD every payload through a bare RESP writer, 1,000 per write."""
    conn = await RespConnection.open(url)
    key = STREAM.encode()
    try:
        started = time.perf_counter()
        for start in range(0, len(payloads), DEPTH):
            chunk = payloads[start:start + DEPTH]
            commands = b"".join(pack(b"XADD", key, b"*", b"event", event, b"hash", digest)
                                for event, digest in chunk)
            await conn.pipeline(commands, len(chunk))
        return time.perf_counter() - started
    finally:
        await conn.close()


async def consume_redis_py(url: str, expected: int) -> float:
    """Seconds to read the whole stream as a group consumer and decode every entry."""
    client: Any = aioredis.Redis.from_url(url)  # untyped replies: XREADGROUP's shape varies
    try:
        await client.xgroup_create(STREAM, GROUP, id="0")
        started = time.perf_counter()
        seen = 0
        while seen < expected:
            reply = await client.xreadgroup(GROUP, "c", {STREAM: ">"}, count=DEPTH)
            entries = reply[0][1] if reply else []
            if not entries:
                raise RuntimeError(f"stream ended after {seen} of {expected} entries")
            decoded = [stored_decoder.decode(fields[b"event"]) for _, fields in entries]
            seen += len(decoded)
        elapsed = time.perf_counter() - started
        await client.xgroup_destroy(STREAM, GROUP)
        return elapsed
    finally:
        await client.aclose()


async def consume_resp(url: str, expected: int) -> float:
    conn = await RespConnection.open(url)
    key = STREAM.encode()
    read = pack(b"XREADGROUP", b"GROUP", GROUP.encode(), b"c", b"COUNT", str(DEPTH).encode(),
                b"STREAMS", key, b">")
    try:
        await conn.call(b"XGROUP", b"CREATE", key, GROUP.encode(), b"0")
        started = time.perf_counter()
        seen = 0
        while seen < expected:
            reply: Any = (await conn.pipeline(read, 1))[0]
            entries = reply[0][1] if reply else []
            if not entries:
                raise RuntimeError(f"stream ended after {seen} of {expected} entries")
            # fields arrive as [b"event", json, b"hash", hex], in the order written
            decoded = [stored_decoder.decode(fields[1]) for _, fields in entries]
            seen += len(decoded)
        elapsed = time.perf_counter() - started
        await conn.call(b"XGROUP", b"DESTROY", key, GROUP.encode())
        return elapsed
    finally:
        await conn.close()


async def delete_stream(url: str) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        await client.delete(STREAM)
    finally:
        await client.aclose()


async def used_memory(url: str) -> int:
    """Allocated bytes once background frees (lazy DEL and FLUSHALL) are done."""
    client = aioredis.Redis.from_url(url)
    try:
        for _ in range(600):
            info = await client.info("memory")
            if not info.get("lazyfree_pending_objects"):
                break
            await asyncio.sleep(0.05)
        return int(info["used_memory"])
    finally:
        await client.aclose()


def run_once(url: str, payloads: list[tuple[bytes, bytes]]) -> dict[str, float]:
    """One run of every limit, in events/s; and the bare stream's bytes per event."""

    async def main() -> dict[str, float]:
        n = len(payloads)
        await delete_stream(url)
        rates = {"xadd_redis_py": n / await xadd_redis_py(url, payloads)}
        await delete_stream(url)
        before = await used_memory(url)
        rates["xadd_resp"] = n / await xadd_resp(url, payloads)
        rates["stream_bytes_per_event"] = (await used_memory(url) - before) / n
        rates["consume_redis_py"] = n / await consume_redis_py(url, n)
        rates["consume_resp"] = n / await consume_resp(url, n)
        await delete_stream(url)
        return rates

    return loop.run(main())


async def single_round_trips(url: str, payloads: list[tuple[bytes, bytes]]) -> list[float]:
    """Milliseconds per XADD sent alone (no pipelining): the floor under the
    latency of publishing one event."""
    conn = await RespConnection.open(url)
    key = b"bench:single"
    latencies = []
    try:
        for event, digest in payloads:
            command = pack(b"XADD", key, b"*", b"event", event, b"hash", digest)
            started = time.perf_counter()
            await conn.pipeline(command, 1)
            latencies.append((time.perf_counter() - started) * 1000)
        await conn.call(b"DEL", key)
        return latencies
    finally:
        await conn.close()


async def read_pages(url: str, stream: str, requests: int, clients: int = 8,
                     count: int = 100) -> list[float]:
    """Milliseconds per XRANGE of `count` stored events by `clients` concurrent
    bare clients: the floor under a page of 100 timeline entries."""
    latencies: list[float] = []
    remaining = requests

    async def client(number: int) -> None:
        nonlocal remaining
        conn = await RespConnection.open(url)
        after = b"-"
        try:
            while remaining > 0:
                remaining -= 1
                command = pack(b"XRANGE", stream.encode(), after, b"+", b"COUNT",
                               str(count).encode())
                started = time.perf_counter()
                entries = (await conn.pipeline(command, 1))[0]
                latencies.append((time.perf_counter() - started) * 1000)
                # walk the stream page by page as a reader would, starting over at its end
                after = b"(" + entries[-1][0] if len(entries) == count else b"-"
        finally:
            await conn.close()

    await asyncio.gather(*(client(n) for n in range(clients)))
    return latencies
