"""Shared fixtures: a real Redis-compatible server for the whole session.

The embedded Valkey (started by our own `EmbeddedServer`, as production does)
unless TIMELINE_TEST_REDIS_URL names another server. Each test starts from an
empty database.

The modules in CLUSTER_MODULES (every integration module but those about a
single server) run twice: against that server ("single") and against a local
6-node Redis Cluster ("cluster", tests/cluster.py, marked slow), so one suite
proves both deployments. TIMELINE_TEST_CLUSTER=0 leaves the
cluster runs out; TIMELINE_TEST_CLUSTER_MODULES=test_a,test_b adds modules.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

from services import bootstrap, config
from services.redis import loop
from services.redis.connection import plain_url
from services.redis.embedded import EmbeddedServer
from tests.cluster import LocalCluster

# The connections as every command runs them (services/redis/loop.py): the tests that
# run a worker or a reader in this process get the mends production has.
loop.mend_connections()

PARTITIONS = 8


# Every integration module runs on the cluster too (a cross-slot script, MULTI or
# command anywhere fails it), except those about one server itself (the embedded
# server, its AOF, TLS, the demo it serves, its refusing writes), the cluster's own
# modules, and two whose subject is the same on either (the CLI's handling of bad
# input; a worker's lease renewal, whose keys are one slot each).
SINGLE_SERVER_MODULES = {"test_embedded", "test_durability", "test_tls", "test_serve_demo",
                         "test_outages", "test_cluster", "test_cluster_failover",
                         "test_cluster_rebalance", "test_cli_input", "test_worker_leases"}
CLUSTER_MODULES = {
    path.stem for path in (Path(__file__).parent / "integration").glob("test_*.py")
    if path.stem not in SINGLE_SERVER_MODULES
} | set(filter(None, os.environ.get("TIMELINE_TEST_CLUSTER_MODULES", "").split(",")))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    module = metafunc.module.__name__.rpartition(".")[2]
    if ("server_url" in metafunc.fixturenames and module in CLUSTER_MODULES
            and os.environ.get("TIMELINE_TEST_CLUSTER") != "0"):
        metafunc.parametrize("server_url", [
            pytest.param("single", id="single"),
            pytest.param("cluster", id="cluster", marks=pytest.mark.slow),
        ], indirect=True, scope="session")


@pytest.fixture(scope="session")
def local_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """6 nodes, 3 masters and 3 replicas, started once, stopped by pid."""
    cluster = LocalCluster(tmp_path_factory.mktemp("cluster")).start()
    try:
        yield cluster
    finally:
        cluster.stop()


def is_cluster_url(url: str) -> bool:
    return url.startswith("redis+cluster://")


@pytest.fixture(scope="session")
def server_url(request: pytest.FixtureRequest) -> str:
    """The single server's URL, or the local cluster's `redis+cluster://` seed."""
    if getattr(request, "param", "single") == "cluster":
        cluster: LocalCluster = request.getfixturevalue("local_cluster")
        return cluster.url
    url: str = request.getfixturevalue("single_server_url")
    return url


@pytest.fixture(scope="session")
def single_server_url() -> Iterator[str]:
    external = os.environ.get("TIMELINE_TEST_REDIS_URL")
    if external:
        yield external
        return
    with tempfile.TemporaryDirectory(prefix="timeline-test-") as data_dir:
        server = EmbeddedServer(Path(data_dir))
        url = server.start()
        try:
            yield url
        finally:
            server.stop()


@pytest.fixture
def redis_url(server_url: str, request: pytest.FixtureRequest) -> str:
    """The test server, emptied (on a cluster: FLUSHALL on every master)."""
    if is_cluster_url(server_url):
        request.getfixturevalue("local_cluster").flush()
        return server_url
    client = redis.Redis.from_url(server_url)
    client.flushdb()
    client.close()
    return server_url


@pytest.fixture
def settings(redis_url: str) -> config.Settings:
    return config.load({"TIMELINE_REDIS_URL": redis_url,
                        "TIMELINE_PARTITIONS": str(PARTITIONS)})


@pytest.fixture
async def services(settings: config.Settings) -> AsyncIterator[bootstrap.Services]:
    assert settings.redis_url
    built = await bootstrap.connect(settings, settings.redis_url)
    try:
        yield built
    finally:
        await built.client.aclose()


class _SyncCluster(RedisCluster):
    def close(self) -> None:
        # redis-py 8.1's from_url gives each node a connection pool that the node's close()
        # leaves open (auto_close_connection_pool is off): its sockets outlived the test.
        nodes = self.get_nodes()
        super().close()
        for node in nodes:
            if node.redis_connection is not None:
                node.redis_connection.connection_pool.disconnect()


def sync_client(url: str) -> redis.Redis:
    """A blocking client for `url`; on a cluster it routes each command to its slot's
    master, and FLUSHDB goes to every master."""
    if is_cluster_url(url):
        return _SyncCluster.from_url(plain_url(url))  # type: ignore[return-value]
    return redis.Redis.from_url(url)


@pytest.fixture
def sync_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = sync_client(redis_url)
    yield client
    client.close()
