"""Workers rebalance on the cluster: 3 workers share the partitions; one is killed
(SIGKILL) and its share is taken over within 10 s; a new one takes its share
within 10 s; every partition always has one owner among the live workers, and
the read model equals the in-memory fold of the log."""

from __future__ import annotations

import asyncio
import math
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from projections.fold import Query
from projections.lease import lease_key
from projections.runner import PROJECTION
from services import bootstrap, config
from services.bootstrap import Services
from tests import factory, processes
from tests.cluster import LocalCluster
from tests.integration.projection_helpers import publish, read_all, reference, wait_projected

pytestmark = pytest.mark.slow

PARTITIONS = 8
TAKEOVER_SECONDS = 10.0


@pytest.fixture
async def on_cluster(local_cluster: LocalCluster) -> AsyncIterator[Services]:
    local_cluster.flush()
    settings = config.load({"TIMELINE_REDIS_URL": local_cluster.url,
                            "TIMELINE_PARTITIONS": str(PARTITIONS)})
    built = await bootstrap.connect(settings, local_cluster.url)
    try:
        yield built
    finally:
        await built.client.aclose()


def name_of(process: subprocess.Popen[bytes]) -> str:
    """The worker's default name (projections.runner.Worker)."""
    return f"{socket.gethostname()}-{process.pid}"


async def owners(services: Services) -> list[str | None]:
    found = []
    for partition in range(PARTITIONS):
        value = await services.client.get(lease_key(partition, PROJECTION))
        found.append(value.decode() if value else None)
    return found


async def until_shared(services: Services, workers: list[subprocess.Popen[bytes]],
                       within: float) -> float:
    """Seconds until every partition is owned by a live worker, each at most its share."""
    names = {name_of(w) for w in workers}
    share = math.ceil(PARTITIONS / len(workers))
    started = time.monotonic()
    last: list[str | None] = []
    while time.monotonic() - started < within:
        last = await owners(services)
        counts = {n: last.count(n) for n in names}
        if all(o in names for o in last) and all(1 <= c <= share for c in counts.values()):
            return time.monotonic() - started
        await asyncio.sleep(0.2)
    raise AssertionError(f"not shared among {sorted(names)} within {within}s: {last}")


async def test_kill_one_of_three_then_add_one(
    on_cluster: Services, local_cluster: LocalCluster, tmp_path: Path
) -> None:
    raw = factory.story(4500, seed=11, amend=100)
    await publish(on_cluster, raw[:1500])
    env = processes.env_for(local_cluster.url)
    workers = [processes.start(["worker"], env, tmp_path / f"worker{i}.log") for i in range(3)]
    try:
        await until_shared(on_cluster, workers, within=30)

        victim = workers.pop(0)
        processes.stop(victim, signal.SIGKILL)
        await publish(on_cluster, raw[1500:3000])
        taken_over = await until_shared(on_cluster, workers, within=TAKEOVER_SECONDS)
        assert taken_over <= TAKEOVER_SECONDS

        workers.append(processes.start(["worker"], env, tmp_path / "worker3.log"))
        await publish(on_cluster, raw[3000:])
        joined = await until_shared(on_cluster, workers, within=TAKEOVER_SECONDS + 5)
        assert joined <= TAKEOVER_SECONDS + 5  # includes the new process's start-up

        await wait_projected(on_cluster, within=60)
        model = await reference(on_cluster)
        query = Query(timeline="all", include_retracted=True)
        got = await read_all(on_cluster, query, limit=500)
        assert [msgspec.to_builtins(e) for e in got] == [
            msgspec.to_builtins(e) for e in model.query(query)]
    finally:
        codes = [processes.stop(w) for w in workers]
    assert codes == [0, 0, 0]
