"""Our in-process figures: append through the real Appender with full
validation, and one real `timeline worker` process projecting the log."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.stack import Stack
from services import bootstrap, config
from services.publishing import Rejection, publish_all
from services.redis import loop

STALL_SECONDS = 60.0  # no progress for this long: the worker is stuck, not slow


async def _connect(url: str) -> bootstrap.Services:
    settings = config.load({"TIMELINE_REDIS_URL": url, "TIMELINE_PARTITIONS": "8"})
    return await bootstrap.connect(settings, url)


async def append(url: str, events: list[dict[str, Any]], stored: int = 0) -> float:
    """Seconds to validate and append `events` to a log of `stored` events as
    `timeline import` does (services.publishing.publish_all: batches of 500, the next
    one validated while the last is appended)."""
    services = await _connect(url)
    try:
        rejected: list[Rejection] = []
        started = time.perf_counter()
        tally = await publish_all(services.appender, enumerate(events, start=1), "bench",
                                  rejected.append)
        elapsed = time.perf_counter() - started
        if rejected or tally.appended != len(events):
            raise RuntimeError(f"append failed: {tally}, first rejection {rejected[:1]}")
        total = await services.log.total()
        if total != stored + len(events):
            raise RuntimeError(f"the log holds {total} events, {stored} + {len(events)} "
                               "were expected")
        return elapsed
    finally:
        await services.client.aclose()


def project(stack: Stack, within: float = 1800.0) -> dict[str, float]:
    """Start one worker on the whole log with an empty read model; time it.

    The rate counts from the first applied batch seen (so the interpreter's
    start-up is not charged to the projection) to the moment the applied
    sequences reach the log heads; start-up is reported on its own.
    """
    return loop.run(_project(stack, within))


async def _project(stack: Stack, within: float) -> dict[str, float]:
    services = await _connect(stack.url)
    try:
        heads = await services.log.heads()
        total = sum(heads.values())
        spawned = time.perf_counter()
        with stack.worker() as process:
            first_at, first_applied = 0.0, 0
            deadline = spawned + within
            progress_at, progress = spawned, -1
            while True:
                applied = await services.read_model.applied()
                now = time.perf_counter()
                done = sum(min(applied.get(p, 0), s) for p, s in heads.items())
                if done and not first_at:
                    first_at, first_applied = now, done
                if done >= total:
                    break
                if done > progress:
                    progress_at, progress = now, done
                if process.poll() is not None:
                    raise RuntimeError(f"`timeline worker` exited with {process.returncode}: "
                                       + stack.log_tail("worker.log"))
                if now - progress_at > STALL_SECONDS or now > deadline:
                    raise TimeoutError(f"the worker projected {done} of {total} events and "
                                       f"then stalled: {stack.log_tail('worker.log')}")
                await asyncio.sleep(0.005)
        busy = now - first_at
        if first_applied >= total or busy <= 0:
            # all done before the first look (tiny logs): charge the start-up too
            return {"rate": total / (now - spawned), "startup_s": 0.0, "total_s": now - spawned}
        return {"rate": (total - first_applied) / busy, "startup_s": first_at - spawned,
                "total_s": now - spawned}
    finally:
        await services.client.aclose()
