"""The worker's side of the live feed (projections/live.py): a batch's entries go
out without a script round trip of their own, a refused feed never holds back
the batch's acknowledgement, a feed refused for a while is published once the
server takes writes again, and entries applied outside a batch go out too."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import OutOfMemoryError
from structlog.testing import capture_logs

from events.stored import event_key
from projections import runner
from projections.broker import create_group
from projections.entry import Entry, entry_encoder
from projections.live import BATCH_STATS, LIVE, LiveFeed, LiveReader
from projections.runner import PROJECTION, Worker
from projections.store import namespace_key
from projections.writes import Fresh
from services.bootstrap import Services
from services.log import keys
from tests import processes
from tests.integration.projection_helpers import publish, until_equal, wait_projected
from tests.integration.test_append import mou


def doc(ident: str, version: int = 1) -> str:
    entry = Entry(source="urn:test:feed", id=ident, type="mou.signed", subject="lg",
                  occurred="2024-03", occurred_start="2024-03-01", occurred_end="2024-03-31",
                  precision="month", qualifier=None, headline=f"MOU {ident}",
                  entities=[], place=None, topics=[], data={}, recordedtime="2024-04-01T00:00:00Z",
                  recordedby="test", position="0-1", version=version)
    return entry_encoder.encode(entry).decode()


async def stored(services: Services, fresh: dict[str, Fresh]) -> dict[str, Fresh]:
    """`fresh` with its documents written to the read model, as an apply leaves them:
    the feed publishes only entries whose stored document is the one it sends."""
    entries = namespace_key(await services.read_model.active(), "entries")
    await services.client.hset(entries, mapping={k: f.doc for k, f in fresh.items()})
    return fresh


async def script_calls(client: Any) -> int:
    """SCRIPT EXISTS and SCRIPT LOAD commands served so far, on every node."""
    if isinstance(client, RedisCluster):
        stats = [await client.info("commandstats", target_nodes=node)
                 for node in client.get_nodes()]
    else:
        stats = [await client.info("commandstats")]
    return sum(int(s.get(f"cmdstat_script|{name}", {}).get("calls", 0))
               for s in stats for name in ("exists", "load"))


async def test_a_batch_is_published_without_a_script_check(services: Services) -> None:
    """redis-py sends SCRIPT EXISTS before a registered script in a pipeline, and a
    registered script must be loaded again after a restart: round trips of their own
    that the feed must not add to the projection's batches."""
    client = services.client
    feed = LiveFeed(client, services.read_model)
    await client.script_flush()  # as after a server restart: nothing cached
    before = await script_calls(client)
    await feed.publish(await stored(services, {
        "k1": Fresh(doc("a"), ["all"], []),
        "k2": Fresh(doc("b"), ["all", "entity:lg"], ["all", "entity:jax"])}),
        [], events=2, seconds=0.01)
    assert await script_calls(client) == before
    messages = await LiveReader(client).read("0-0", block_ms=1)
    assert [(m.entry.id, m.timelines, m.left) for m in messages] == [
        ("a", ["all"], []), ("b", ["all", "entity:lg"], ["entity:jax"])]


async def test_an_entry_changed_since_its_apply_is_left_to_whoever_changed_it(
    services: Services
) -> None:
    """A worker that applied a batch, then stalled past its lease, publishes after the
    next owner applied and published a newer version (here: the stored document is
    version 2, the stalled worker's version 1). Its stale version stays off the feed,
    so the feed does not end on it; its batch is still acknowledged, and an entry
    read back from the store (a redelivery) goes out as stored."""
    client = services.client
    stream, group = "timeline:{p0}:test-feed", "projection"
    await client.xgroup_create(stream, group, id="0", mkstream=True)
    ident = await client.xadd(stream, {"event": "{}"})
    await client.xreadgroup(group, "worker-1", {stream: ">"}, count=10)
    a, b = event_key("urn:test:feed", "a"), event_key("urn:test:feed", "b")
    await stored(services, {a: Fresh(doc("a", version=2), ["all"], []),
                            b: Fresh(doc("b", version=3), ["all"], [])})
    await LiveFeed(client, services.read_model).publish(
        {a: Fresh(doc("a"), ["all"], [])}, [b], events=2, seconds=0.01,
        acknowledge=(stream, group, [ident]))
    messages = await LiveReader(client).read("0-0", block_ms=1)
    assert [(m.entry.id, m.entry.version) for m in messages] == [("b", 3)]
    assert (await client.xpending(stream, group))["pending"] == 0


async def test_a_refused_feed_still_acknowledges_the_batch(services: Services) -> None:
    """The feed is secondary: when the server refuses it (here the live key holds a
    string), the error is logged and the batch is still acknowledged."""
    client = services.client
    stream, group = "timeline:{p0}:test-feed", "projection"
    await client.xgroup_create(stream, group, id="0", mkstream=True)
    ident = await client.xadd(stream, {"event": "{}"})
    await client.xreadgroup(group, "worker-1", {stream: ">"}, count=10)
    await client.set(LIVE, "not a stream")
    fresh = await stored(services, {"k1": Fresh(doc("a"), ["all"], [])})
    with capture_logs() as logs:
        await LiveFeed(client, services.read_model).publish(
            fresh, [], events=1, seconds=0.01, acknowledge=(stream, group, [ident]))
    assert (await client.xpending(stream, group))["pending"] == 0
    assert [e["event"] for e in logs if e["log_level"] == "error"] == [
        "live feed publish failed"]


async def test_entries_another_consumer_left_pending_reach_the_feed_when_caught_up(
    services: Services, redis_url: str, logs_dir: Path,
) -> None:
    """Entries a vanished consumer (another name than ours) read and never applied are
    applied from the log when the next batch finds the gap; they go to the feed too."""
    await publish(services, [mou("left-1"), mou("left-2")])
    partition = keys.partition_of("lg", services.partitions)
    stream = keys.log(partition)
    await create_group(services.client, stream, PROJECTION)
    await services.client.xreadgroup(PROJECTION, "vanished", {stream: ">"}, count=10)
    await publish(services, [mou("after")])
    worker = processes.start(["worker"], processes.env_for(redis_url), logs_dir / "worker.log")
    try:
        await wait_projected(services)
    finally:
        processes.stop(worker)
    messages = await LiveReader(services.client).read("0-0", block_ms=1)
    assert sorted(m.entry.id for m in messages) == ["after", "left-1", "left-2"]


async def test_unrecorded_statistics_neither_fail_nor_repeat_the_feed(
    services: Services
) -> None:
    """The batch histogram is written beside the feed; its refusal (here its key holds
    a string) is a warning of its own, not a feed failure to log or to publish again."""
    client = services.client
    await client.set(BATCH_STATS, "not a hash")
    fresh = await stored(services, {"k1": Fresh(doc("a"), ["all"], [])})
    with capture_logs() as logs:
        await LiveFeed(client, services.read_model).publish(fresh, [], events=1, seconds=0.01)
    assert [m.entry.id for m in await LiveReader(client).read("0-0", block_ms=1)] == ["a"]
    assert [(e["log_level"], e["event"]) for e in logs] == [
        ("warning", "batch statistics not recorded")]


async def test_a_feed_refused_for_a_while_raises_so_it_is_published_again(
    services: Services
) -> None:
    """Out of memory the server refuses the feed, but not an acknowledgement (XACK is
    taken out of memory): the feed raises, and published again it goes out once."""
    client = services.client
    stream, group = "timeline:{p0}:test-feed", "projection"
    await client.xgroup_create(stream, group, id="0", mkstream=True)
    ident = await client.xadd(stream, {"event": "{}"})
    await client.xreadgroup(group, "worker-1", {stream: ">"}, count=10)
    feed = LiveFeed(client, services.read_model)
    fresh = await stored(services, {"k1": Fresh(doc("a"), ["all"], [])})
    await client.config_set("maxmemory", "1")
    try:
        with pytest.raises(OutOfMemoryError):
            await feed.publish(fresh, [], events=1, seconds=0.01,
                               acknowledge=(stream, group, [ident]))
    finally:
        await client.config_set("maxmemory", "0")
    assert await LiveReader(client).read("0-0", block_ms=1) == []
    await feed.publish(fresh, [], events=1, seconds=0.01, acknowledge=(stream, group, [ident]))
    assert [m.entry.id for m in await LiveReader(client).read("0-0", block_ms=1)] == ["a"]
    assert (await client.xpending(stream, group))["pending"] == 0


async def test_the_worker_waits_out_a_feed_refused_after_the_apply(
    services: Services, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server runs out of memory between a batch's apply and its feed: the worker
    waits it out and publishes the batch, which it acknowledges, instead of leaving
    it off the feed (and pending) until the partition's next owner."""
    monkeypatch.setattr(runner, "TICK_SECONDS", 0.2)
    client = services.client
    worker = Worker(client, redis_url, services.partitions, name="feed-refused")
    project, refusals = worker.projector.project, []

    async def project_then_refuse(partition: int, events: Any) -> Any:
        projected = await project(partition, events)
        if not refusals:
            await client.config_set("maxmemory", "1")
            refusals.append(asyncio.create_task(accept_writes_after(1.0)))
        return projected

    async def accept_writes_after(seconds: float) -> None:
        await asyncio.sleep(seconds)
        await client.config_set("maxmemory", "0")

    monkeypatch.setattr(worker.projector, "project", project_then_refuse)
    running = asyncio.create_task(worker.run())
    try:
        with capture_logs() as logs:
            await publish(services, [mou("refused-feed")])
            await until_fed(client, "refused-feed")
        await refusals[0]
        # On a cluster the acknowledgement is a call of its own after the feed's.
        stream = keys.log(keys.partition_of("lg", services.partitions))

        async def pending() -> int:
            return int((await client.xpending(stream, PROJECTION))["pending"])

        await until_equal(pending, 0, within=10.0)
        assert any(e["event"] == "server unavailable, retrying" for e in logs)
        assert not any(e["log_level"] == "error" for e in logs), logs
    finally:
        await client.config_set("maxmemory", "0")
        worker.stop()
        await asyncio.wait_for(running, 60)


async def until_fed(client: Any, ident: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while [m.entry.id for m in await LiveReader(client).read("0-0", block_ms=1)] != [ident]:
        assert time.monotonic() < deadline, f"{ident} did not reach the live feed"
        await asyncio.sleep(0.05)


async def test_a_reader_behind_the_trimmed_entries_is_told(services: Services) -> None:
    """`read_checked` says when entries after the reader's position were trimmed
    before it read them (checked after the read, so none can slip in between)."""
    client = services.client
    feed = LiveFeed(client, services.read_model)
    for ident in ("a", "b", "c"):
        await feed.publish(await stored(services, {ident: Fresh(doc(ident), ["all"], [])}),
                           [], 1, 0.0)
    reader = LiveReader(client)
    [first, second, third] = await reader.read("0-0", block_ms=1)
    assert await reader.read_checked(first.id, block_ms=1) == (
        [second, third], False, third.id)
    # the reader, at `first`, missed `second`
    await client.xtrim(LIVE, minid=third.id, approximate=False)
    assert await reader.read_checked(first.id, block_ms=1) == ([third], True, third.id)
    assert await reader.read_checked(third.id, block_ms=1) == ([], False, third.id)
