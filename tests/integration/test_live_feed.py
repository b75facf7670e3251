"""The worker's side of the live feed (projections/live.py): a batch's entries go
out without a script round trip of their own, a refused feed never holds back
the batch's acknowledgement, and entries applied outside a batch go out too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from redis.asyncio.cluster import RedisCluster
from structlog.testing import capture_logs

from projections.broker import create_group
from projections.entry import Entry, entry_encoder
from projections.live import LIVE, LiveFeed, LiveReader
from projections.runner import PROJECTION
from projections.writes import Fresh
from services.bootstrap import Services
from services.log import keys
from tests import processes
from tests.integration.projection_helpers import publish, wait_projected
from tests.integration.test_append import mou


def doc(ident: str) -> str:
    entry = Entry(source="urn:test:feed", id=ident, type="mou.signed", subject="lg",
                  occurred="2024-03", occurred_start="2024-03-01", occurred_end="2024-03-31",
                  precision="month", qualifier=None, headline=f"MOU {ident}",
                  entities=[], place=None, topics=[], data={}, recordedtime="2024-04-01T00:00:00Z",
                  recordedby="test", position="0-1")
    return entry_encoder.encode(entry).decode()


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
    await feed.publish({"k1": Fresh(doc("a"), ["all"], []),
                        "k2": Fresh(doc("b"), ["all", "entity:lg"], ["all", "entity:jax"])},
                       [], events=2, seconds=0.01)
    assert await script_calls(client) == before
    messages = await LiveReader(client).read("0-0", block_ms=1)
    assert [(m.entry.id, m.timelines, m.left) for m in messages] == [
        ("a", ["all"], []), ("b", ["all", "entity:lg"], ["entity:jax"])]


async def test_a_refused_feed_still_acknowledges_the_batch(services: Services) -> None:
    """The feed is secondary: when the server refuses it (here the live key holds a
    string), the error is logged and the batch is still acknowledged."""
    client = services.client
    stream, group = "timeline:{p0}:test-feed", "projection"
    await client.xgroup_create(stream, group, id="0", mkstream=True)
    ident = await client.xadd(stream, {"event": "{}"})
    await client.xreadgroup(group, "worker-1", {stream: ">"}, count=10)
    await client.set(LIVE, "not a stream")
    with capture_logs() as logs:
        await LiveFeed(client, services.read_model).publish(
            {"k1": Fresh(doc("a"), ["all"], [])}, [], events=1, seconds=0.01,
            acknowledge=(stream, group, [ident]))
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
