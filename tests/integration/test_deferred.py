"""A rebuild's held-back members (projections/deferred.py): the copy it writes is
key for key the one that applying the same log in order writes, however often it
flushes and however soon amendments follow the entries they remove members of."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable
from typing import Any

import pytest

from events.stored import StoredEvent
from projections import deferred, writes
from projections.deferred import HeldMembers
from projections.runner import Projector, decode_entries
from projections.store import ReadModel, namespace_key
from services.bootstrap import Services
from services.log import keys
from tests import factory
from tests.integration.projection_helpers import publish

BATCH = 40


def interleaved(count: int, amend: int, seed: int) -> list[dict[str, Any]]:
    """A story whose amendments each come at a random point after their target."""
    rng = random.Random(seed)
    events = [factory.event(i, rng) for i in range(count)]
    at = {e["id"]: i for i, e in enumerate(events)}
    placed = [(float(i), e) for i, e in enumerate(events)]
    for fix in factory.amendments(events, rng, amend, count):
        target = at[fix["data"]["target"]]
        placed.append((target + 0.5 + rng.random() * min(60, count - target), fix))
    return [e for _, e in sorted(placed, key=lambda p: p[0])]


async def the_log(services: Services) -> dict[int, list[StoredEvent]]:
    return {p: decode_entries(await services.client.xrange(keys.log(p), "-", "+"))
            for p in range(services.partitions)}


async def apply_all(projector: Projector, log: dict[int, list[StoredEvent]],
                    batch: int = BATCH) -> None:
    """Every partition concurrently, in batches, as a replay reads the log."""
    async def partition(p: int) -> None:
        for start in range(0, len(log[p]), batch):
            await projector.apply(p, log[p][start:start + batch])
    await asyncio.gather(*(partition(p) for p in log))


async def dump(services: Services, namespace: str) -> dict[str, Any]:
    """Every key of a namespace, by name within it, with its whole content."""
    prefix = namespace_key(namespace, "")
    found: dict[str, Any] = {}
    async for raw in services.client.scan_iter(match=prefix + "*", count=1000):
        name = raw.decode()
        kind = (await services.client.type(name)).decode()
        if kind == "zset":
            found[name[len(prefix):]] = await services.client.zrange(name, 0, -1, withscores=True)
        else:
            assert kind == "hash", (name, kind)
            found[name[len(prefix):]] = await services.client.hgetall(name)
    return found


class Watched(HeldMembers):
    """Remembers the most it held at once."""

    most = 0

    def add(self, members: dict[str, list[str]],
            removed: Iterable[tuple[str, str]] = ()) -> None:
        super().add(members, removed)
        self.most = max(self.most, len(self))


async def test_held_members_rebuild_the_copy_applying_in_order_writes(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deferred, "CALL_MEMBERS", 7)  # large timelines span several calls
    await publish(services, interleaved(1500, amend=300, seed=11))
    log = await the_log(services)
    await apply_all(Projector(ReadModel(services.client, "blue")), log)

    rebuilt = ReadModel(services.client, "green")
    held = Watched(rebuilt, limit=250)  # full every few dozen events
    await apply_all(Projector(rebuilt, held), log)
    assert held.most >= 250  # it held members back, and wrote them when full
    assert await services.client.zcard(namespace_key("green", "tl:all")) > 0
    await held.flush()

    assert len(held) == 0
    assert await dump(services, "green") == await dump(services, "blue")


async def test_a_member_an_amendment_removes_is_written_before_it_is_removed(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writes, "HOLD_FROM", 1)  # batches of one event: hold every member
    story = factory.story(30, seed=2)
    fix = {"specversion": "1.0", "id": "fix-1", "source": story[0]["source"],
           "subject": story[0]["subject"], "type": "event.retracted",
           "data": {"target": story[0]["id"], "reason": "wrong"}, "occurred": "2025-01-01"}
    await publish(services, [*story, fix])
    log = await the_log(services)
    await apply_all(Projector(ReadModel(services.client, "blue")), log)

    rebuilt = ReadModel(services.client, "green")
    held = HeldMembers(rebuilt)  # never full here: only the amendment writes early
    await apply_all(Projector(rebuilt, held), log, batch=1)  # the fix after its target
    assert 0 < await services.client.zcard(namespace_key("green", "tl:all")) < 30
    await held.flush()
    assert await dump(services, "green") == await dump(services, "blue")


class LostReply(ReadModel):
    """The first batch lands but its reply is lost: the client's retry hears "done"."""

    retried = False

    async def apply(self, partition: int, payload: bytes, stateless: bool = False
                    ) -> tuple[str, int]:
        reply = await super().apply(partition, payload, stateless)
        if self.retried:
            return reply
        self.retried = True
        return await super().apply(partition, payload, stateless)


async def test_a_batch_whose_reply_was_lost_still_has_its_members_written(
    services: Services,
) -> None:
    await publish(services, factory.story(400, seed=6))
    log = await the_log(services)
    await apply_all(Projector(ReadModel(services.client, "blue")), log)

    rebuilt = LostReply(services.client, "green")
    held = HeldMembers(rebuilt)
    await apply_all(Projector(rebuilt, held), log)
    await held.flush()
    assert rebuilt.retried
    assert await dump(services, "green") == await dump(services, "blue")


class Slow(ReadModel):
    """Each fill call takes a while, as a large one does."""

    async def add_members(self, groups: list[Any]) -> None:
        await asyncio.sleep(0.2)
        await super().add_members(groups)


async def test_a_member_a_running_flush_has_taken_is_written_before_write_now_returns(
    services: Services,
) -> None:
    held = HeldMembers(Slow(services.client, "green"))
    held.add({"all": ["m1"]})
    flushing = asyncio.create_task(held.flush())
    await asyncio.sleep(0)  # the flush has taken m1 and waits on its call
    await held.write_now({("all", "m1")})
    assert await services.client.zrange(namespace_key("green", "tl:all"), 0, -1) == [b"m1"]
    await flushing


async def test_only_a_rebuilds_namespace_takes_members_directly(services: Services) -> None:
    with pytest.raises(ValueError, match="bound to a namespace"):
        await ReadModel(services.client).add_members(["all", ["m"]])
