"""The FastStream broker matching the client: a cluster client gets a cluster broker.

Deciding from the client rather than the URL keeps one source of truth: the
composition root chose the client from TIMELINE_REDIS_URL / TIMELINE_REDIS_CLUSTER.
"""

from __future__ import annotations

from typing import Any

from faststream.redis import RedisBroker, RedisClusterBroker
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

_CLUSTER_SCHEME = "redis+cluster://"


def make_broker(client: Any, url: str, **options: Any) -> RedisBroker:
    """A broker on the same server (or cluster) as `client`."""
    if isinstance(client, RedisCluster):
        if url.startswith(_CLUSTER_SCHEME):  # FastStream and redis-py take the plain scheme
            url = "redis://" + url[len(_CLUSTER_SCHEME):]
        return RedisClusterBroker(url, **options)
    return RedisBroker(url, **options)


async def create_group(client: Any, stream: str, group: str) -> None:
    """The consumer group at the stream's start, unless it exists: FastStream would
    create it at `$`, and skip what was written before its first consumer started."""
    try:
        await client.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as exc:
        if not str(exc).startswith("BUSYGROUP"):  # an out-of-memory server, say
            raise
