"""Partition leases: at most one active projector per partition, by expiry.

The lease only avoids wasted work; correctness rests on the read model's
per-partition applied sequence, so two owners at once change nothing.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog

from projections.outages import worth_waiting

log = structlog.get_logger("projection")

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


class Held:
    """The partitions whose leases this worker holds, renewed by a task of their own
    (`keep`): a rebalance that waits (a batch finishing before a give-up, a drain of
    what an earlier owner left) would otherwise let every other lease expire meanwhile,
    and other workers would take partitions still being projected here."""

    def __init__(self, leases: Leases, tick_seconds: float) -> None:
        self.leases = leases
        self.tick_seconds = tick_seconds
        self._partitions: set[int] = set()
        self._takes: dict[int, int] = {}  # partition -> how many times its lease was taken

    @property
    def partitions(self) -> frozenset[int]:
        """Read-only: a lease is held only through `take`, which counts it for `renew`."""
        return frozenset(self._partitions)

    def take(self, partition: int) -> None:
        """The lease of `partition` was just acquired: hold it."""
        self._partitions.add(partition)
        self._takes[partition] = self._takes.get(partition, 0) + 1

    def drop(self, partition: int) -> None:
        """Stop renewing `partition`'s lease (given up, or found lost)."""
        self._partitions.discard(partition)

    async def keep(self) -> None:
        """Renew every tick until cancelled; an outage is waited out, anything else ends it."""
        while True:
            try:
                await self.renew()
            except Exception as exc:
                if not worth_waiting(exc):
                    raise
                log.warning("server unavailable, retrying", error=str(exc))
            await asyncio.sleep(self.tick_seconds)

    async def renew(self) -> None:
        """Renew every held lease, then heartbeat. The leases first: they are what keeps
        a partition mid-batch from being taken over, and a server out of memory refuses
        the heartbeat's ZADD but not the renewals' PEXPIRE, so a heartbeat first would
        let every lease lapse for want of it. A lapsed heartbeat only leaves this worker
        out of the others' count of the living for a while (a larger share to seek: their
        acquires fail while the leases hold). Its refusal still reaches `keep`, which
        logs it and retries."""
        for partition in self.partitions:
            takes = self._takes.get(partition)
            renewed = await self.leases.renew(partition)
            # A refusal that answers for a lease since given up and taken again (the
            # rebalance ran while the reply was on its way) says nothing of the new one.
            if not renewed and self._takes.get(partition) == takes:
                self.drop(partition)  # the rebalance gives it up
        await self.leases.heartbeat()
