"""HTTP publish figures against a real `timeline api` process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import msgspec

from bench.rawhttp import HttpConnection

BATCH_TYPE = "application/cloudevents-batch+json"
SINGLE_TYPE = "application/cloudevents+json"


async def batch_publish(base: str, bodies: list[bytes], events: int, clients: int = 4) -> float:
    """Seconds for `clients` concurrent httpx clients to POST every body (a batch each)."""
    queue = iter(bodies)

    async def client() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=120) as http:
            for body in queue:  # one shared iterator: each body is sent once
                response = await http.post("/v1/events", content=body,
                                           headers={"content-type": BATCH_TYPE})
                if response.status_code != 200:
                    raise RuntimeError(f"batch publish: {response.status_code} "
                                       f"{response.text[:300]}")

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return time.perf_counter() - started


class Pool:
    """Idle keep-alive connections; a new one when all are busy.

    A connection idle for longer than IDLE_SECONDS is closed rather than reused:
    uvicorn closes keep-alive connections idle for 5 s, and a request written as it
    does so is lost ("closed without answering"). Taking the most recent first
    leaves the others idle after a burst, so this happens in long runs.
    """

    IDLE_SECONDS = 4.0

    def __init__(self, base: str) -> None:
        self.base = base
        self.idle: list[tuple[HttpConnection, float]] = []
        self.opened = 0

    async def take(self) -> HttpConnection:
        now = time.monotonic()
        stale = [conn for conn, since in self.idle if now - since > self.IDLE_SECONDS]
        if stale:
            self.idle = [(conn, since) for conn, since in self.idle
                         if now - since <= self.IDLE_SECONDS]
            for conn in stale:
                await conn.close()
        if self.idle:
            return self.idle.pop()[0]
        self.opened += 1
        return await HttpConnection.open(self.base)

    def give(self, conn: HttpConnection) -> None:
        self.idle.append((conn, time.monotonic()))

    async def close(self) -> None:
        for conn, _ in self.idle:
            await conn.close()


Request = Callable[[HttpConnection], Awaitable[tuple[int, bytes]]]


async def open_loop(base: str, requests: list[Request], rate: float) -> dict[str, Any]:
    """Send `requests` at `rate` per second whatever the replies do (open loop).

    Latency runs from the moment a request is written to its full response;
    `late_ms_max` says how far behind schedule the sender ever was.
    """
    pool = Pool(base)
    latencies: list[float] = []
    errors: list[str] = []
    late = 0.0

    async def one(request: Request) -> None:
        conn = await pool.take()
        started = time.perf_counter()
        status, body = await request(conn)
        latencies.append((time.perf_counter() - started) * 1000)
        if status != 200:
            errors.append(f"{status} {body[:300].decode(errors='replace')}")
        pool.give(conn)

    tasks = []
    t0 = time.perf_counter()
    for i, request in enumerate(requests):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            late = max(late, -delay)
        tasks.append(asyncio.create_task(one(request)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t0
    await pool.close()
    return {"latencies": latencies, "errors": errors, "late_ms_max": late * 1000,
            "achieved_rate": len(requests) / elapsed, "connections": pool.opened}


async def closed_loop(base: str, requests: list[Request], concurrency: int,
                      duration: float) -> dict[str, Any]:
    """`concurrency` clients sending back to back for `duration` seconds."""
    source = iter(requests)
    latencies: list[float] = []
    errors: list[str] = []
    stop_at = time.perf_counter() + duration

    async def client() -> None:
        conn = await HttpConnection.open(base)
        try:
            for request in source:
                started = time.perf_counter()
                status, body = await request(conn)
                done = time.perf_counter()
                latencies.append((done - started) * 1000)
                if status != 200:
                    errors.append(f"{status} {body[:300].decode(errors='replace')}")
                if done >= stop_at:
                    return
        finally:
            await conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - t0
    return {"latencies": latencies, "errors": errors, "rate": len(latencies) / elapsed,
            "seconds": elapsed}


def single_requests(events: list[dict[str, Any]]) -> list[Request]:
    """One POST per event, bodies encoded up front."""
    encoder = msgspec.json.Encoder()

    def make(body: bytes) -> Request:
        return lambda conn: conn.request("POST", "/v1/events", body, SINGLE_TYPE)

    return [make(encoder.encode(e)) for e in events]

