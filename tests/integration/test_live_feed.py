"""The worker's side of the live feed (projections/live.py): one round trip per batch."""

from __future__ import annotations

from typing import Any

import msgspec
from redis.asyncio.cluster import RedisCluster

from projections.entry import Entry, entry_encoder
from projections.live import LIVE, LiveFeed, LiveReader
from services.bootstrap import Services


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
    await feed.publish({"k1": (doc("a"), ["all"]), "k2": (doc("b"), ["all", "entity:lg"])},
                       [], events=2, seconds=0.01)
    assert await script_calls(client) == before
    messages = await LiveReader(client).read("0-0", block_ms=0)
    assert [(m.entry.id, m.timelines) for m in messages] == [
        ("a", ["all"]), ("b", ["all", "entity:lg"])]
    newest = await client.xrevrange(LIVE, count=1)
    assert msgspec.json.decode(newest[0][1][b"entry"])["id"] == "b"
