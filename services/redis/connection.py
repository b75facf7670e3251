"""Which server to talk to, and the clients that talk to it."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from services.config import Settings
from services.redis.embedded import EmbeddedServer, ServerUnavailable, running_url, start_lock

CLUSTER_SCHEME = "redis+cluster://"


def is_cluster(url: str, cluster_flag: bool = False) -> bool:
    return cluster_flag or url.startswith(CLUSTER_SCHEME)


def plain_url(url: str) -> str:
    """`redis+cluster://h:p` as the `redis://h:p` seed the clients take."""
    return "redis://" + url[len(CLUSTER_SCHEME):] if url.startswith(CLUSTER_SCHEME) else url


def client(url: str, cluster: bool = False) -> Any:
    """An asyncio client that retries briefly when the connection drops.

    For a cluster (`redis+cluster://` or TIMELINE_REDIS_CLUSTER=1) redis-py's
    RedisCluster: it routes each command, script call and pipeline slice to the
    master owning its slot, and follows MOVED replies after a failover.
    """
    if is_cluster(url, cluster):
        # A failover takes cluster-node-timeout plus an election: keep retrying
        # for about that long before giving the error to the caller.
        cluster_retry = Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=12)
        return RedisCluster.from_url(
            plain_url(url), retry=cluster_retry,
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
        )
    retry = Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=5)
    return aioredis.Redis.from_url(
        url, retry=retry, retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=30,
    )


def resolve_url(settings: Settings, start: bool = True) -> tuple[str, EmbeddedServer | None]:
    """TIMELINE_REDIS_URL, else the data dir's running embedded server, else a new one."""
    if settings.redis_url:
        return settings.redis_url, None
    with start_lock(settings.data_dir):
        url = running_url(settings.data_dir)
        if url:
            return url, None
        if not start:
            raise ServerUnavailable(f"no server is running for {settings.data_dir}")
        server = EmbeddedServer(settings.data_dir, settings.fsync)
        return server.start(), server
