"""The FastStream broker matching the client: a cluster client gets a cluster broker.

Deciding from the client rather than the URL keeps one source of truth: the
composition root chose the client from TIMELINE_REDIS_URL / TIMELINE_REDIS_CLUSTER.
"""

from __future__ import annotations

from typing import Any

from faststream.redis import RedisBroker, RedisClusterBroker
from redis.asyncio.cluster import RedisCluster

_CLUSTER_SCHEME = "redis+cluster://"


def make_broker(client: Any, url: str, **options: Any) -> RedisBroker:
    """A broker on the same server (or cluster) as `client`."""
    if isinstance(client, RedisCluster):
        if url.startswith(_CLUSTER_SCHEME):  # FastStream and redis-py take the plain scheme
            url = "redis://" + url[len(_CLUSTER_SCHEME):]
        return RedisClusterBroker(url, **options)
    return RedisBroker(url, **options)
