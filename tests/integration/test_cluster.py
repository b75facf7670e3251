"""Redis Cluster specifics on the local 6-node cluster (tests/cluster.py), and
TIMELINE_WRITE_REPLICAS: acknowledge only what replicas confirmed.

The core suites run against the cluster too (tests/conftest.py CLUSTER_MODULES);
this module covers what only a cluster has: several masters, replicas, WAIT.
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from redis.asyncio.cluster import RedisCluster

from events.envelope import validate_event
from services import bootstrap, config
from services.bootstrap import Services
from services.log import append as append_module
from services.log import keys
from services.log.append import NotDurable
from tests import factory, processes
from tests.cluster import LocalCluster
from tests.integration.projection_helpers import until_equal, wait_projected

pytestmark = pytest.mark.slow

PARTITIONS = 8


@pytest.fixture
def cluster(local_cluster: LocalCluster) -> LocalCluster:
    local_cluster.flush()
    return local_cluster


async def connect(url: str, **env: str) -> Services:
    settings = config.load({"TIMELINE_REDIS_URL": url, "TIMELINE_PARTITIONS": str(PARTITIONS),
                            **env})
    assert settings.redis_url
    return await bootstrap.connect(settings, settings.redis_url)


@pytest.fixture
async def on_cluster(cluster: LocalCluster) -> AsyncIterator[Services]:
    built = await connect(cluster.url)
    try:
        yield built
    finally:
        await built.client.aclose()


def events(count: int, seed: int = 0) -> list[Any]:
    return [validate_event(e, "2025-01-01") for e in factory.story(count, seed)]


def owner_of(cluster: LocalCluster, key: str) -> redis.Redis:
    """The master node holding `key`'s slot, asked directly (not through routing)."""
    any_node = cluster.primaries()[0]
    slot = any_node.cluster("keyslot", key)
    for low, high, primary, *_ in any_node.execute_command("CLUSTER", "SLOTS"):
        if low <= slot <= high:
            return redis.Redis(host=primary[0], port=primary[1])
    raise AssertionError(f"no master for {key}")


async def test_the_cluster_url_gives_a_cluster_client(on_cluster: Services) -> None:
    assert isinstance(on_cluster.client, RedisCluster)


async def test_partitions_spread_over_every_master_and_append_there(
    on_cluster: Services, cluster: LocalCluster
) -> None:
    results = await on_cluster.appender.append(events(400))
    assert {r.status for r in results} == {"appended"}
    holders = set()
    for partition in range(PARTITIONS):
        node = owner_of(cluster, keys.log(partition))
        with node:
            length = node.xlen(keys.log(partition))  # read on the owner: no redirect
            assert length == sum(r.partition == partition for r in results)
            holders.add(node.connection_pool.connection_kwargs["port"])
    assert len(holders) == 3  # 8 partition tags land on all three masters


async def test_scripts_reload_after_every_master_forgot_them(
    on_cluster: Services, cluster: LocalCluster
) -> None:
    await on_cluster.appender.append(events(20))
    for client in cluster.primaries():
        client.script_flush()
    results = await on_cluster.appender.append(events(40)[20:])
    assert {r.status for r in results} == {"appended"}


async def test_write_replicas_one_is_acknowledged_and_on_the_replica(
    cluster: LocalCluster,
) -> None:
    built = await connect(cluster.url, TIMELINE_WRITE_REPLICAS="1")
    try:
        assert built.appender.write_replicas == 1
        results = await built.appender.append(events(60))
        assert {r.status for r in results} == {"appended"}
        # WAIT returned 1: the replica already holds every acknowledged entry.
        for partition in {r.partition for r in results}:
            log_key = keys.log(partition)
            primary = built.client.get_node_from_key(log_key)
            replica = next(n for n in cluster.replicas
                           if n.client().info("replication")["master_port"] == primary.port)
            with redis.Redis(port=replica.port) as direct:
                direct.execute_command("READONLY")
                assert direct.xlen(log_key) == sum(r.partition == partition for r in results)
        # A batch of pure duplicates also waits (and is confirmed).
        again = await built.appender.append(events(60))
        assert {r.status for r in again} == {"duplicate"}
    finally:
        await built.client.aclose()


async def test_more_write_replicas_than_exist_is_not_durable_then_a_retry_is_a_duplicate(
    cluster: LocalCluster,
) -> None:
    strict = await connect(cluster.url, TIMELINE_WRITE_REPLICAS="2")  # each master has 1
    relaxed = await connect(cluster.url, TIMELINE_WRITE_REPLICAS="1")
    try:
        batch = events(5)
        with pytest.raises(NotDurable, match="1 of 2 replica"):
            await strict.appender.append(batch)
        results = await relaxed.appender.append(batch)
        assert {r.status for r in results} == {"duplicate"}  # written, never copied twice
    finally:
        await strict.client.aclose()
        await relaxed.client.aclose()


async def test_a_duplicate_is_acknowledged_only_once_its_original_is_on_a_replica(
    cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A retry after NotDurable finds its events written (duplicates): on a new connection,
    # which wrote nothing, WAIT alone would confirm at once though no replica has them.
    monkeypatch.setattr(append_module, "WAIT_TIMEOUT_MS", 300)
    batch = events(5)
    stopped = [n.process.pid for n in cluster.replicas if n.process is not None]
    assert len(stopped) == len(cluster.replicas)
    for pid in stopped:  # not acknowledging anything: a replica that lags
        os.kill(pid, signal.SIGSTOP)
    try:
        for _ in range(2):  # the write, then a retry on a new connection
            built = await connect(cluster.url, TIMELINE_WRITE_REPLICAS="1")
            try:
                with pytest.raises(NotDurable, match="0 of 1 replica"):
                    await built.appender.append(batch)
            finally:
                await built.client.aclose()
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
    built = await connect(cluster.url, TIMELINE_WRITE_REPLICAS="1")
    try:
        assert {r.status for r in await built.appender.append(batch)} == {"duplicate"}
    finally:
        await built.client.aclose()


async def test_write_replicas_on_a_server_without_replicas_answers_503(
    redis_url: str, tmp_path: Path
) -> None:
    env = processes.env_for(redis_url, TIMELINE_WRITE_REPLICAS="1")
    api_port = processes.free_port()
    process = processes.start(["api", "--port", str(api_port)], env, tmp_path / "api.log")
    try:
        base = f"http://127.0.0.1:{api_port}"
        processes.wait_http(base, process=process)
        raw = factory.story(3)
        async with httpx.AsyncClient(timeout=30) as http:
            reply = await http.post(f"{base}/v1/events", json=raw)
        assert reply.status_code == 503, reply.text
        assert reply.headers["retry-after"] == "1"
        assert "0 of 1 replica" in reply.json()["message"]
    finally:
        processes.stop(process)


async def test_ingest_stream_rejects_and_appends_then_the_worker_stops_cleanly(
    on_cluster: Services, cluster: LocalCluster, tmp_path: Path
) -> None:
    from services.ingest.consumer import GROUP, REJECTED, STREAM

    worker = processes.start(["worker"], processes.env_for(cluster.url), tmp_path / "worker.log")
    try:
        for raw in factory.story(3):
            await on_cluster.client.xadd(STREAM, {"event": _json(raw)})
        await on_cluster.client.xadd(STREAM, {"event": b"{not json"})
        await until_equal(lambda: on_cluster.log.total(), 3)
        await until_equal(lambda: on_cluster.client.xlen(REJECTED), 1)
        await wait_projected(on_cluster)

        async def pending() -> int:
            return int((await on_cluster.client.xpending(STREAM, GROUP))["pending"])

        # On a cluster the ingest's XACK is a call of its own after the rejected copy.
        await until_equal(pending, 0)
    finally:
        code = processes.stop(worker)
    assert code == 0  # graceful stop on a cluster too: batches finished, leases released


def _json(raw: dict[str, Any]) -> bytes:
    import json

    return json.dumps(raw).encode()
