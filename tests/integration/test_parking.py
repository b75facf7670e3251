"""Poison entries: an apply that keeps failing is parked after PARK_ATTEMPTS,
the partition flows on, `timeline audit parked` lists it and `timeline audit
unpark` retries it. The failure is injected through the projector's fold seam
of a real Worker run in this process, against the real server."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter
from typing import Any

import msgspec

from events.stored import StoredEvent, event_key
from projections.fold import Change, Query, State
from projections.parking import PARK_ATTEMPTS, parked
from projections.runner import PROJECTION, Projector, Worker, log_key
from projections.store import ReadModel
from services.bootstrap import Services
from tests import factory, processes
from tests.integration.projection_helpers import publish, read_all, reference, wait_projected


class FailingProjector(Projector):
    """A projector with a bug that shows for some events only."""

    def __init__(self, read_model: ReadModel, poison: set[str]) -> None:
        super().__init__(read_model)
        self.poison = poison
        self.failures: Counter[str] = Counter()

    def fold(self, event: StoredEvent, state: State | None) -> Change:
        if event.id in self.poison:
            self.failures[event.id] += 1
            raise RuntimeError(f"injected failure for {event.id}")
        return super().fold(event, state)


def cli(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.cli", *args],
                          env=processes.env_for(redis_url), cwd=processes.ROOT,
                          capture_output=True, text=True, timeout=120)


async def timeline_all(services: Services) -> list[dict[str, Any]]:
    q = Query(timeline="all", include_retracted=True)
    return [msgspec.to_builtins(e) for e in await read_all(services, q, limit=1000)]


async def test_poison_is_parked_listed_and_unparked(services: Services, redis_url: str) -> None:
    events = factory.story(3000, seed=21, amend=200)
    corrections = [e for e in events if e["type"] == "event.corrected"]
    # An original event that a later correction amends, and a correction of another.
    original = next(e for e in events if e["id"] == corrections[0]["data"]["target"])
    amendment = corrections[1]
    poison = {original["id"], amendment["id"]}
    await publish(services, events)

    projector = FailingProjector(ReadModel(services.client), poison)
    worker = Worker(services.client, redis_url, services.partitions, name="parking-test",
                    projector=projector)
    running = asyncio.create_task(worker.run())
    try:
        await wait_projected(services, within=90)  # every partition reaches its head
    finally:
        worker.stop()
        await running

    found = await parked(services.client, services.partitions, PROJECTION)
    assert {p.id for p in found} == poison
    for entry in found:
        assert entry.attempts == PARK_ATTEMPTS
        assert f"RuntimeError: injected failure for {entry.id}" == entry.error
        stored = msgspec.json.decode(entry.event)
        assert (stored["partition"], stored["sequence"]) == (entry.partition, entry.sequence)
        assert projector.failures[entry.id] >= PARK_ATTEMPTS
    for partition in range(services.partitions):
        pending = await services.client.xpending(log_key(partition), PROJECTION)
        assert pending["pending"] == 0

    # Everything else is exactly right; the two poisoned entries' timelines lack them.
    affected = {event_key(original["source"], original["id"]),
                event_key(amendment["source"], amendment["data"]["target"])}
    model = await reference(services)
    expected = [msgspec.to_builtins(e) for e in model.query(
        Query(timeline="all", include_retracted=True))]
    got = await timeline_all(services)
    assert got != expected

    def without(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [e for e in entries if event_key(e["source"], e["id"]) not in affected]

    assert without(got) == without(expected)

    listed = cli(redis_url, "audit", "parked", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    shown = msgspec.json.decode(listed.stdout)["parked"]
    assert sorted(p["id"] for p in shown) == sorted(poison)
    assert all("injected failure" in p["error"] for p in shown)

    # The bug is "fixed" (the CLI runs the real fold): unpark retries and clears them.
    retried = cli(redis_url, "audit", "unpark")
    assert retried.returncode == 0, retried.stderr
    report = msgspec.json.decode(retried.stdout)
    assert (report["retried"], len(report["applied"]), report["still_parked"]) == (2, 2, [])
    assert await parked(services.client, services.partitions, PROJECTION) == []
    assert await timeline_all(services) == expected
    again = cli(redis_url, "audit", "parked", "--format", "json")
    assert msgspec.json.decode(again.stdout) == {"parked": []}
