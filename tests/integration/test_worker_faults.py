"""Projection workers that die, and workers that overlap."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import msgspec

from projections.fold import Query
from services.bootstrap import Services
from tests import factory, processes
from tests.integration.projection_helpers import publish, read_all, reference, wait_projected

LEASE_TAKEOVER_BOUND = 10.0


async def applied_total(services: Services) -> int:
    return sum((await services.read_model.applied()).values())


async def assert_equals_reference(services: Services) -> None:
    model = await reference(services)
    for name in ("all", "entity:org-3", "pair:org-1:org-5", "topic:ai", "place:US"):
        q = Query(timeline=name, include_retracted=True)
        got = await read_all(services, q, limit=500)
        assert [msgspec.to_builtins(e) for e in got] == [
            msgspec.to_builtins(e) for e in model.query(q)]
        keys = [(e.source, e.id) for e in got]
        assert len(keys) == len(set(keys)), "an entry appears twice"


async def test_kill_9_mid_batch_then_takeover_matches_the_fold(
    services: Services, redis_url: str, logs_dir: Path
) -> None:
    await publish(services, factory.story(30_000, seed=3, amend=500))
    env = processes.env_for(redis_url)
    first = processes.start(["worker"], env, logs_dir / "crash-a.log")
    try:
        while await applied_total(services) < 2_000:  # noqa: ASYNC110 (polling a server)
            await asyncio.sleep(0.02)
        first.send_signal(signal.SIGKILL)
        first.wait()
        killed_at, progress = time.monotonic(), await applied_total(services)
        assert progress < 30_500, "the worker finished before it could be killed"
        second = processes.start(["worker"], env, logs_dir / "crash-b.log")
        try:
            while await applied_total(services) == progress:
                assert time.monotonic() - killed_at < LEASE_TAKEOVER_BOUND + 5
                await asyncio.sleep(0.05)
            took = time.monotonic() - killed_at
            await wait_projected(services)
        finally:
            processes.stop(second)
    finally:
        processes.stop(first)
    assert took < LEASE_TAKEOVER_BOUND + 2  # lease expiry (6 s) + one tick, with slack
    await assert_equals_reference(services)


async def test_two_workers_at_once_apply_each_partition_once(
    services: Services, redis_url: str, logs_dir: Path
) -> None:
    env = processes.env_for(redis_url)
    workers = [processes.start(["worker"], env, logs_dir / f"pair-{i}.log") for i in range(2)]
    try:
        await publish(services, factory.story(8_000, seed=4, amend=300))
        await wait_projected(services)
    finally:
        for w in workers:
            processes.stop(w)
    await assert_equals_reference(services)
