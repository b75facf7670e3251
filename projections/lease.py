"""Partition leases: at most one active projector per partition, by expiry.

The lease only avoids wasted work; correctness rests on the read model's
per-partition applied sequence, so two owners at once change nothing.
"""

from __future__ import annotations

import time
from typing import Any

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
WORKERS = "timeline:workers"


def lease_key(partition: int, projection: str) -> str:
    return f"timeline:{{p{partition}}}:lease:{projection}"


class Leases:
    def __init__(self, client: Any, owner: str, projection: str, ttl_ms: int) -> None:
        self.client = client
        self.owner = owner
        self.projection = projection
        self.ttl_ms = ttl_ms
        self._release = client.register_script(RELEASE)
        self._renew = client.register_script(RENEW)

    async def acquire(self, partition: int) -> bool:
        key = lease_key(partition, self.projection)
        return bool(await self.client.set(key, self.owner, nx=True, px=self.ttl_ms))

    async def renew(self, partition: int) -> bool:
        key = lease_key(partition, self.projection)
        return bool(await self._renew(keys=[key], args=[self.owner, self.ttl_ms]))

    async def release(self, partition: int) -> None:
        await self._release(keys=[lease_key(partition, self.projection)], args=[self.owner])

    async def heartbeat(self) -> int:
        """Register this worker as alive; return how many workers are alive."""
        now = int(time.time() * 1000)
        pipe = self.client.pipeline(transaction=False)
        pipe.zadd(WORKERS, {self.owner: now + self.ttl_ms})
        pipe.zremrangebyscore(WORKERS, "-inf", now)
        pipe.zcard(WORKERS)
        replies = await pipe.execute()
        return max(1, int(replies[-1]))

    async def leave(self) -> None:
        await self.client.zrem(WORKERS, self.owner)
