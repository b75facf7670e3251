"""A projection worker's leases, run in this process against the real server: they
stay renewed while its rebalance waits on something slow, and a renewal refused for a
lease since given up does not drop the lease taken again (projections/lease.py, Held)."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest
from redis.exceptions import OutOfMemoryError
from structlog.testing import capture_logs

from projections import runner
from projections.lease import WORKERS, Held, Leases, lease_key
from projections.runner import PROJECTION, Worker
from services.bootstrap import Services
from tests.integration.projection_helpers import until

TTL_MS = 1200
SLOW_DRAIN_SECONDS = 2.0  # each give-up's drain outlasts the lease
STOP_WITHIN_SECONDS = 60


async def test_leases_stay_renewed_while_a_give_up_waits(
    services: Services, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "LEASE_TTL_MS", TTL_MS)
    monkeypatch.setattr(runner, "TICK_SECONDS", 0.2)
    worker = Worker(services.client, redis_url, services.partitions, name="slow-giver")
    running = asyncio.create_task(worker.run())
    client = services.client
    keys = [lease_key(p, PROJECTION) for p in range(services.partitions)]

    try:
        await until(lambda: len(worker.owned) == services.partitions, within=30)
        giving_up: list[int] = []
        drain = worker.drain_pending

        async def slow_drain(partition: int) -> None:
            giving_up.append(partition)
            await asyncio.sleep(SLOW_DRAIN_SECONDS)
            await drain(partition)

        monkeypatch.setattr(worker, "drain_pending", slow_drain)
        # A second worker appears: this one's share halves, and it gives up the upper
        # half one partition after another, each drain longer than a lease lives.
        await client.zadd(WORKERS, {"newcomer": int(time.time() * 1000) + 600_000})
        kept = range(services.partitions // 2)
        started = time.monotonic()
        while time.monotonic() - started < 2.5 * SLOW_DRAIN_SECONDS:
            holders = [await client.get(keys[p]) for p in kept]  # one slot each
            assert holders == [b"slow-giver"] * len(kept), (holders, giving_up)
            await asyncio.sleep(0.1)
        assert len(giving_up) >= 2  # the rebalance was stuck in give-ups all along
        assert set(worker.owned) >= set(kept)
    finally:
        await client.zrem(WORKERS, "newcomer")
        worker.stop()
        await stopped(running)


async def stopped(running: asyncio.Task[None]) -> None:
    """Wait for the worker to stop; if it does not, fail showing where every task is."""
    try:
        await asyncio.wait_for(asyncio.shield(running), STOP_WITHIN_SECONDS)
    except TimeoutError:
        for task in asyncio.all_tasks():
            task.print_stack(file=sys.stderr)
        running.cancel()
        raise AssertionError(f"the worker did not stop within {STOP_WITHIN_SECONDS} s") from None


async def _renew_across(
    services: Services, retake: bool
) -> tuple[list[bool], set[int], bytes | None]:
    """Held renews partition 0 while its lease is given up, and (`retake`) taken
    again before the renewal's refusal arrives: the renewal's replies, what Held
    keeps, and who holds the lease."""
    leases = Leases(services.client, "renewer", PROJECTION, ttl_ms=60_000)
    held = Held(leases, tick_seconds=0.2)
    assert await leases.acquire(0)
    held.take(0)
    in_flight, given_up, ran, answered = (asyncio.Event() for _ in range(4))
    renew, replies = leases.renew, []

    async def late_reply(partition: int) -> bool:
        in_flight.set()  # Held has read its count of takes: the renewal is on its way
        await given_up.wait()
        renewed = await renew(partition)  # runs on the server after the release
        replies.append(renewed)
        ran.set()
        await answered.wait()  # ...and its reply arrives after the retake
        return renewed

    leases.renew = late_reply  # type: ignore[method-assign]
    renewing = asyncio.create_task(held.renew())
    await in_flight.wait()
    held.drop(0)  # the rebalance gives the partition up...
    await leases.release(0)
    given_up.set()
    await ran.wait()
    if retake:  # ...and takes it again
        assert await leases.acquire(0)
        held.take(0)
    answered.set()
    await renewing
    holder = await services.client.get(lease_key(0, PROJECTION))
    await leases.release(0)
    return replies, held.partitions, holder


async def test_a_stale_refused_renewal_keeps_a_lease_taken_again(services: Services) -> None:
    assert await _renew_across(services, retake=True) == ([False], {0}, b"renewer")


async def test_a_refused_renewal_gives_the_partition_up(services: Services) -> None:
    assert await _renew_across(services, retake=False) == ([False], set(), None)


async def test_leases_are_renewed_while_the_heartbeat_is_refused(services: Services) -> None:
    """Out of memory, the server refuses the heartbeat's ZADD yet takes the renewals'
    PEXPIRE. Held heartbeat first, so it renewed nothing: a lease's life later every
    partition of a worker alive mid-batch was taken over."""
    client, key, ttl_ms = services.client, lease_key(0, PROJECTION), 60_000
    leases = Leases(client, "oom-renewer", PROJECTION, ttl_ms=ttl_ms)
    held = Held(leases, tick_seconds=0.1)
    assert await leases.acquire(0)
    held.take(0)
    await client.pexpire(key, 1_000)  # the lease near its end
    await client.config_set("maxmemory", "1")
    try:
        with pytest.raises(OutOfMemoryError):  # the refused heartbeat is still said...
            await held.renew()
        assert await client.pttl(key) > ttl_ms - 5_000  # ...after the lease's renewal
        await client.pexpire(key, 1_000)
        with capture_logs() as logs:  # and `keep` waits it out, renewing every tick
            keeper = asyncio.create_task(held.keep())
            await asyncio.sleep(0.35)
            keeper.cancel()
            with pytest.raises(asyncio.CancelledError):
                await keeper
        assert await client.pttl(key) > ttl_ms - 5_000
        assert any(e["event"] == "server unavailable, retrying" for e in logs), logs
    finally:
        await client.config_set("maxmemory", "0")
    assert held.partitions == {0} and await client.get(key) == b"oom-renewer"
    await leases.release(0)
    await leases.leave()
