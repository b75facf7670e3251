"""Entries delivered to a worker's partition but never applied or acknowledged are
recovered by that worker on its own ticks (projections/runner.py, `_recover_stranded`),
not left for the partition's next event or next owner: FastStream never delivers a
batch twice. Each test publishes nothing after the fault, so only the recovery heals."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.exceptions import OutOfMemoryError
from structlog.testing import capture_logs

import projections.runner as runner
from projections.live import LIVE
from projections.runner import CONSUMER, PROJECTION, Worker, log_key
from projections.store import ReadModel
from services.bootstrap import Services
from services.queries import projection_lag
from tests.integration.projection_helpers import publish, until_equal
from tests.integration.test_parking import FailingProjector

BASE = {"specversion": "1.0", "source": "urn:stranded", "type": "x-test.noted",
        "subject": "acme", "occurred": "2024-01-02", "data": {}}
RECOVERED = "stranded entries recovered"


async def behind(services: Services) -> dict[int, int]:
    """Per partition, logged entries not applied yet (only those behind)."""
    return {p: n for p, n in (await projection_lag(services.log, services.read_model)).items()
            if n}


async def pending(services: Services) -> int:
    """Delivered entries not acknowledged, over the partitions that have a log."""
    heads = await services.log.heads()
    counts = [await services.client.xpending(log_key(p), PROJECTION)
              for p, head in heads.items() if head]
    return sum(c["pending"] for c in counts)


class FailingOnce:
    """Stands in for an async callable: raises `error` on the first call, then calls it."""

    def __init__(self, real: Callable[..., Awaitable[Any]], error: Exception) -> None:
        self.real, self.error, self.failed = real, error, False

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self.failed:
            self.failed = True
            raise self.error
        return await self.real(*args, **kwargs)


@contextlib.asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[None]:
    task = asyncio.create_task(worker.run())
    try:
        yield
    finally:
        worker.stop()
        await task


async def test_a_read_served_to_a_stopped_subscriber_is_applied(
    services: Services, redis_url: str
) -> None:
    """The old owner's XREADGROUP, in flight when its subscriber is stopped, is served
    entries nobody handles: they sit in the shared consumer's pending list, behind the
    new owner's drain."""
    await publish(services, [{**BASE, "id": "first"}])
    worker = Worker(services.client, redis_url, services.partitions, name="new-owner")
    with capture_logs() as logs:
        async with running(worker):
            await until_equal(lambda: behind(services), {})
            partition = next(p for p, s in (await services.log.heads()).items() if s)
            subscriber = worker.owned[partition]
            await runner.stop_subscriber(subscriber)  # the new owner's reader, paused
            await publish(services, [{**BASE, "id": f"e-{i}"} for i in range(5)])
            served = await services.client.xreadgroup(
                PROJECTION, CONSUMER, {log_key(partition): ">"})  # the old owner's read
            assert len(served[0][1]) == 5
            await subscriber.start()
            await until_equal(lambda: behind(services), {}, within=20)
            await until_equal(lambda: pending(services), 0, within=20)
    assert [e["partition"] for e in logs if e["event"] == RECOVERED] == [partition]


async def test_a_batch_whose_handler_failed_is_fed_and_acknowledged(
    services: Services, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refusal that is not worth waiting out, after the apply: the batch stays pending,
    off the live feed, until the worker drains it itself."""
    worker = Worker(services.client, redis_url, services.partitions, name="failing-feed")
    feed = FailingOnce(worker._feed, RuntimeError("refused for good"))
    monkeypatch.setattr(worker, "_feed", feed)
    await publish(services, [{**BASE, "id": f"e-{i}"} for i in range(5)])
    async with running(worker):
        await until_equal(lambda: behind(services), {}, within=20)  # applied, then the refusal
        await until_equal(lambda: pending(services), 0, within=20)
    assert feed.failed
    fed = await services.client.xrange(LIVE)
    assert sum(b'"id":"e-' in entry[b"entry"] for _, entry in fed) >= 5


async def test_a_refusal_while_parking_is_waited_out(
    services: Services, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server refusing writes (out of memory) as an entry is parked: the batch goes
    on once it takes them again, without waiting for a recovery."""
    await publish(services, [{**BASE, "id": f"e-{i}"} for i in range(40)])  # one partition
    park = FailingOnce(runner.park, OutOfMemoryError(
        "command not allowed when used memory > 'maxmemory'."))
    monkeypatch.setattr(runner, "park", park)
    projector = FailingProjector(ReadModel(services.client), {"e-10"})
    worker = Worker(services.client, redis_url, services.partitions, name="parking",
                    projector=projector)
    with capture_logs() as logs:
        async with running(worker):
            await until_equal(lambda: behind(services), {}, within=20)
            await until_equal(lambda: pending(services), 0, within=20)
    assert park.failed
    assert [e["event"] for e in logs if e["event"] in ("entry parked", RECOVERED)] == [
        "entry parked"]
