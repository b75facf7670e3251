"""SIGTERM to a real `timeline worker` mid-projection: the batch in hand is
finished and acknowledged, leases are released, the exit status is 0 within
the grace period, and a successor completes the read model exactly."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import msgspec

from projections.fold import Query
from projections.lease import WORKERS, lease_key
from projections.runner import GRACE_SECONDS, PROJECTION, log_key
from services.bootstrap import Services
from services.ingest.consumer import LEASE as INGEST_LEASE
from tests import factory, processes
from tests.integration.projection_helpers import publish, read_all, reference, wait_projected


async def applied_total(services: Services) -> int:
    return sum((await services.read_model.applied()).values())


async def assert_equals_reference(services: Services) -> None:
    model = await reference(services)
    for name in ("all", "entity:org-3", "topic:ai", "place:US"):
        q = Query(timeline=name, include_retracted=True)
        got = [msgspec.to_builtins(e) for e in await read_all(services, q, limit=500)]
        assert got == [msgspec.to_builtins(e) for e in model.query(q)], name


async def test_sigterm_mid_projection_is_graceful(
    services: Services, redis_url: str, logs_dir: Path
) -> None:
    events = factory.story(12_000, seed=11, amend=300)
    await publish(services, events)
    env = processes.env_for(redis_url)
    worker_log = logs_dir / "graceful-a.log"  # shared by both backends' runs
    logged_before = worker_log.stat().st_size if worker_log.exists() else 0
    worker = processes.start(["worker"], env, worker_log)
    try:
        while await applied_total(services) < 1_000:
            assert worker.poll() is None
            await asyncio.sleep(0.01)
        asked = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(worker.wait, GRACE_SECONDS + 10)
        took = time.monotonic() - asked
    finally:
        processes.stop(worker)
    assert code == 0
    assert took < GRACE_SECONDS
    assert b'"worker stopped"' in worker_log.read_bytes()[logged_before:]
    progress = await applied_total(services)
    assert progress < len(events), "the worker finished before it was asked to stop"

    client = services.client
    for partition in range(services.partitions):
        assert not await client.exists(lease_key(partition, PROJECTION)), partition
        groups = await client.xinfo_groups(log_key(partition))
        if not groups:  # the stop came before it took this partition
            continue
        # Everything it read was applied and acknowledged: nothing pending.
        [group] = groups
        assert group["pending"] == 0, (partition, group, await client.xpending_range(
            log_key(partition), PROJECTION, "-", "+", 3))
        delivered = int(group["last-delivered-id"].split(b"-")[0])
        applied = (await services.read_model.applied()).get(partition, 0)
        assert delivered <= applied, (partition, delivered, applied)
    assert not await client.exists(INGEST_LEASE)
    assert await client.zcard(WORKERS) == 0

    successor = processes.start(["worker"], env, logs_dir / "graceful-b.log")
    try:
        await wait_projected(services, within=90)
    finally:
        assert processes.stop(successor) == 0
    assert await applied_total(services) == len(events)
    await assert_equals_reference(services)
