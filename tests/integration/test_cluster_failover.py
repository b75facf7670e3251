"""Failover on a cluster of our own: publishers keep going with
TIMELINE_WRITE_REPLICAS=1 while the master owning a partition is killed.

Every event acknowledged before, during and after the failover is in the log
exactly once and projected once; the chains verify; publishers only ever saw
retryable answers (503) besides success.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from events.stored import event_key
from projections.fold import Query
from services import bootstrap, config
from services.bootstrap import Services
from services.log import keys
from tests import factory, processes
from tests.cluster import LocalCluster
from tests.integration.projection_helpers import read_all, reference, wait_projected
from tests.integration.test_append import assert_chains_verify

pytestmark = pytest.mark.slow

PARTITIONS = 8


@pytest.fixture
async def own_cluster(tmp_path: Path) -> AsyncIterator[LocalCluster]:
    """Not the session's cluster: this test leaves its topology changed."""
    cluster = LocalCluster(tmp_path / "cluster").start()
    try:
        yield cluster
    finally:
        cluster.stop()


class Publisher:
    """Posts batches until stopped; retries a batch on 503 as a client should."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.acknowledged: set[str] = set()
        self.retryable = 0
        self.unexpected: list[str] = []
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        raw = factory.story(6000, seed=3)
        async with httpx.AsyncClient(base_url=self.base, timeout=60) as http:
            for start in range(0, len(raw), 20):
                if self.stopping.is_set():
                    return
                batch = raw[start:start + 20]
                while True:
                    try:
                        reply = await http.post("/v1/events", json=batch)
                    except httpx.TransportError as exc:  # no answer: unknown, retry
                        self.unexpected.append(f"transport: {exc}")
                        return
                    if reply.status_code == 200:
                        results = reply.json()["results"]
                        assert {r["status"] for r in results} <= {"appended", "duplicate"}
                        self.acknowledged.update(event_key(r["source"], r["id"])
                                                 for r in results)
                        break
                    if reply.status_code == 503:
                        self.retryable += 1
                        await asyncio.sleep(0.2)
                        continue
                    self.unexpected.append(f"{reply.status_code}: {reply.text[:300]}")
                    return


async def _wait_for(predicate: Any, what: str, within: float = 60.0,
                    publisher: Publisher | None = None) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {what}")
        if publisher is not None:
            assert not publisher.unexpected, publisher.unexpected
        await asyncio.sleep(0.2)


async def test_acknowledged_events_survive_a_master_failover(
    own_cluster: LocalCluster, tmp_path: Path
) -> None:
    env = processes.env_for(own_cluster.url, TIMELINE_WRITE_REPLICAS="1")
    port = processes.free_port()
    api = processes.start(["api", "--port", str(port)], env, tmp_path / "api.log")
    worker = processes.start(["worker"], env, tmp_path / "worker.log")
    settings = config.load({"TIMELINE_REDIS_URL": own_cluster.url,
                            "TIMELINE_PARTITIONS": str(PARTITIONS)})
    built: Services | None = None
    try:
        base = f"http://127.0.0.1:{port}"
        processes.wait_http(base, process=api)
        publisher = Publisher(base)
        task = asyncio.create_task(publisher.run())
        await _wait_for(lambda: len(publisher.acknowledged) >= 300, "events before the kill",
                        publisher=publisher)

        # Kill (SIGKILL) the master owning partition 0; its replica is promoted.
        first = own_cluster.masters[0].client()
        slot = first.cluster("keyslot", keys.log(0))
        owner_port = next(int(primary[1]) for low, high, primary, *_ in
                          first.execute_command("CLUSTER", "SLOTS") if low <= slot <= high)
        victim = next(n for n in own_cluster.masters if n.port == owner_port)
        before_kill = len(publisher.acknowledged)
        victim.kill()
        await _wait_for(lambda: _state_ok(own_cluster), "the cluster to elect a new master")
        # The old master comes back as a replica of the new one, so writes to its
        # slots can be confirmed by a replica again.
        victim.start()
        await _wait_for(lambda: _replica_linked(victim), "the old master to rejoin as replica")
        during = len(publisher.acknowledged)
        await _wait_for(lambda: len(publisher.acknowledged) >= during + 300,
                        "events after the failover", publisher=publisher)
        publisher.stopping.set()
        await asyncio.wait_for(task, 120)

        assert not publisher.unexpected, publisher.unexpected
        assert before_kill >= 300 and len(publisher.acknowledged) > during >= before_kill
        # Publishing ran into the failover: writes were refused (503) and retried, so
        # what the test checks below includes requests made while there was no master.
        assert publisher.retryable > 0

        built = await bootstrap.connect(settings, own_cluster.url)
        stored: list[str] = []
        for partition in range(PARTITIONS):
            for _, fields in await built.client.xrange(keys.log(partition), "-", "+"):
                event = msgspec.json.decode(fields[b"event"])
                stored.append(event_key(event["source"], event["id"]))
        assert len(stored) == len(set(stored))  # nothing written twice
        assert publisher.acknowledged <= set(stored)  # nothing acknowledged was lost
        await assert_chains_verify(built)
        await wait_projected(built, within=60)
        model = await reference(built)
        query = Query(timeline="all", include_retracted=True)
        got = await read_all(built, query, limit=500)
        assert [msgspec.to_builtins(e) for e in got] == [
            msgspec.to_builtins(e) for e in model.query(query)]
        assert len(got) == len(stored)  # projected once each
    finally:
        if built is not None:
            await built.client.aclose()
        processes.stop(worker)
        processes.stop(api)


def _state_ok(cluster: LocalCluster) -> bool:
    alive = cluster.primaries()
    return len(alive) == 3 and all(
        c.cluster("info")["cluster_state"] == "ok" for c in alive)


def _replica_linked(node: Any) -> bool:
    info = node.client().info("replication")
    return bool(info["role"] == "slave" and info.get("master_link_status") == "up")
