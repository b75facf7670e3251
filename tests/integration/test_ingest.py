"""The ingest stream with a real `timeline worker` process: plain XADD and a
FastStream publisher both reach the log and the timelines; bad entries land
in the rejected stream with reasons; nothing stays pending."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from faststream.redis.annotations import RedisBatchStreamMessage
from redis.asyncio.cluster import RedisCluster

from events.envelope import NewEvent
from projections.broker import make_broker
from services.bootstrap import Services
from services.ingest import consumer as consumer_module
from services.ingest.consumer import (
    BATCH,
    CONSUMER,
    GROUP,
    LEASE,
    LEASE_TTL_MS,
    REJECTED,
    STREAM,
    IngestConsumer,
)
from services.log import keys
from services.log.append import Appender
from tests import processes
from tests.integration.projection_helpers import wait_projected


def mou(ident: str, subject: str = "lg", **extra: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "id": ident, "source": "urn:test:ingest", "type": "mou.signed",
            "subject": subject, "occurred": "2023-12?",
            "data": {"parties": [{"id": subject, "name": "LG"}, {"id": "jax"}]}, **extra}


def encoded(event: dict[str, Any]) -> bytes:
    return msgspec.json.encode(event)


async def wait_consumed(services: Services, within: float = 30.0) -> None:
    """Until the group has read everything and acknowledged it."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        groups = await services.client.xinfo_groups(STREAM)
        group = next((g for g in groups if g["name"] == GROUP.encode()), None)
        if group and group["pending"] == 0 and group["lag"] == 0:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"ingest not consumed: {groups}")


async def stored(services: Services) -> dict[str, dict[str, Any]]:
    found = {}
    for partition in range(services.partitions):
        for _, fields in await services.client.xrange(keys.log(partition), "-", "+"):
            event = msgspec.json.decode(fields[b"event"])
            found[event["id"]] = event
    return found


async def test_xadd_and_faststream_entries_are_appended_and_projected(
    services: Services, redis_url: str, logs_dir: Path
) -> None:
    client = services.client
    # Written before any consumer exists: the group starts at 0, so these count.
    await client.xadd(STREAM, {"event": encoded(mou("early"))})
    worker = processes.start(["worker"], processes.env_for(redis_url), logs_dir / "ingest.log")
    try:
        for n in range(20):
            await client.xadd(STREAM, {"event": encoded(mou(f"plain-{n}", subject=f"org-{n}"))})
        async with make_broker(client, redis_url) as broker:
            for n in range(20):
                await broker.publish(mou(f"fs-{n}", subject=f"org-{n}"), stream=STREAM)
        # A correction right after its target: stream order is append order.
        await client.xadd(STREAM, {"event": encoded(mou("target", subject="jax"))})
        await client.xadd(STREAM, {"event": encoded({
            **mou("fix", subject="jax"), "type": "event.corrected",
            "data": {"target": "target", "reason": "date", "occurred": "2023-11"}})})
        await asyncio.sleep(0.5)
        await wait_consumed(services)
        await wait_projected(services)
    finally:
        assert processes.stop(worker) == 0
    log = await stored(services)
    expected = {"early", "target", "fix"} | {f"plain-{n}" for n in range(20)} | {
        f"fs-{n}" for n in range(20)}
    assert set(log) == expected
    assert {e["recordedby"] for e in log.values()} == {"ingest"}
    assert await client.xlen(REJECTED) == 0
    found = await services.read_model.entry("urn:test:ingest", "fs-7")
    assert found is not None and found[0].subject == "org-7"
    corrected = await services.read_model.entry("urn:test:ingest", "target")
    assert corrected is not None
    assert (corrected[0].status, corrected[0].occurred) == ("corrected", "2023-11")


async def test_rejected_entries_move_with_reasons_and_nothing_stays_pending(
    services: Services, worker: object
) -> None:
    client = services.client
    bad_field = mou("bad")
    bad_field["data"]["parties"][0]["id"] = "Not An Id"
    entries = [
        ("ok-1", {"event": encoded(mou("ok-1"))}),
        ("no-field", {"payload": b"{}"}),
        ("not-json", {"event": b"{oops"}),
        ("invalid", {"event": encoded(bad_field), "note": b"kept"}),
        ("server-set", {"event": encoded(mou("s", hash="x"))}),
        ("orphan-fix", {"event": encoded({
            **mou("fix-nothing"), "type": "event.retracted",
            "data": {"target": "never-sent", "reason": "x"}})}),
        ("ok-2", {"event": encoded(mou("ok-2"))}),
        ("dup", {"event": encoded(mou("ok-1"))}),
        ("reused", {"event": encoded(mou("ok-1", occurred="2020"))}),
    ]
    ids = {}
    for label, fields in entries:
        ids[(await client.xadd(STREAM, fields)).decode()] = label
    await wait_consumed(services)
    rejected = {ids[f[b"ingest_id"].decode()]: f for _, f in await client.xrange(REJECTED)}
    assert set(rejected) == {"no-field", "not-json", "invalid", "server-set", "orphan-fix",
                             "reused"}
    reasons = {label: msgspec.json.decode(f[b"errors"]) for label, f in rejected.items()}
    assert "needs an 'event' field" in reasons["no-field"][0]["message"]
    assert "not valid JSON" in reasons["not-json"][0]["message"]
    assert reasons["invalid"][0]["path"] == "data.parties[0].id"
    assert reasons["server-set"][0]["path"] == "hash"
    assert reasons["orphan-fix"][0]["path"] == "data.target"
    assert reasons["reused"][0]["path"] == "id" and "id-reused" in reasons["reused"][0]["message"]
    assert rejected["invalid"][b"note"] == b"kept"
    assert rejected["not-json"][b"event"] == b"{oops"
    log = await stored(services)
    assert set(log) == {"ok-1", "ok-2"}
    assert log["ok-1"]["occurred"] == "2023-12?", "a conflicting re-send changes nothing"
    summary = await client.xpending(STREAM, GROUP)
    assert summary["pending"] == 0


async def test_a_dead_owners_pending_entries_are_finished_first(
    services: Services, redis_url: str, logs_dir: Path
) -> None:
    client = services.client
    await client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    for n in range(5):
        await client.xadd(STREAM, {"event": encoded(mou(f"p-{n}"))})
    # What a worker killed mid-batch leaves: entries read under the shared name, never acked.
    read = await client.xreadgroup(GROUP, "ingest", {STREAM: ">"}, count=3)
    assert len(read[0][1]) == 3
    assert (await client.xpending(STREAM, GROUP))["pending"] == 3
    worker = processes.start(["worker"], processes.env_for(redis_url), logs_dir / "ingest-b.log")
    try:
        await wait_consumed(services)
    finally:
        assert processes.stop(worker) == 0
    # One subject, so one partition: stored() lists them in log order, the pending
    # three (read before the new two) first.
    assert list(await stored(services)) == [f"p-{n}" for n in range(5)]


class BrokenAppender(Appender):
    """An append path with a bug that shows for one event only."""

    async def append(self, events: list[NewEvent], recordedby: str = "anonymous") -> list[Any]:
        if any(e.id == "trips-the-bug" for e in events):
            raise RuntimeError("injected append bug")
        return await super().append(events, recordedby)


async def test_an_amendment_of_a_target_refused_in_the_same_batch_names_its_target(
    services: Services,
) -> None:
    client = services.client
    await client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    await client.xadd(STREAM, {"event": encoded(mou("miscounted", expectedversion=5))})
    await client.xadd(STREAM, {"event": encoded({
        **mou("fix-it"), "type": "event.retracted",
        "data": {"target": "miscounted", "reason": "x"}})})
    [(_, entries)] = await client.xreadgroup(GROUP, "ingest", {STREAM: ">"}, count=10)
    assert len(entries) == 2  # one batch: the target passes the check, then is refused
    await IngestConsumer(client, "redis://unused", services.appender).process_with_retry(entries)
    errors = {msgspec.json.decode(f[b"event"])["id"]: msgspec.json.decode(f[b"errors"])[0]
              for _, f in await client.xrange(REJECTED)}
    assert errors["miscounted"]["path"] == "expectedversion"
    assert errors["fix-it"]["path"] == "data.target"
    assert "target-missing" in errors["fix-it"]["message"]
    assert await stored(services) == {}


async def test_an_owner_that_loses_the_lease_while_draining_stops_there(
    services: Services,
) -> None:
    client = services.client
    await client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    pipe = client.pipeline(transaction=False)
    for n in range(BATCH + 5):
        pipe.xadd(STREAM, {"event": encoded(mou(f"p-{n}", subject=f"org-{n % 7}"))})
    await pipe.execute()
    await client.xreadgroup(GROUP, CONSUMER, {STREAM: ">"}, count=BATCH + 5)  # left pending
    consumer = IngestConsumer(client, "redis://unused", services.appender, name="first")
    drain_batch = consumer.process_with_retry

    async def then_taken_over(entries: Any) -> None:  # as after an outage longer than the TTL
        await drain_batch(entries)
        await client.set(LEASE, "second", px=LEASE_TTL_MS)

    consumer.process_with_retry = then_taken_over  # type: ignore[method-assign]
    await consumer._tick()  # takes the lease, drains
    assert consumer.subscriber is None  # no reading alongside the new owner
    assert (await client.xpending(STREAM, GROUP))["pending"] == 5  # the new owner's now
    assert len(await stored(services)) == BATCH


async def test_an_entry_that_keeps_failing_is_rejected_not_blocking(services: Services) -> None:
    client = services.client
    await client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    for ident in ("before", "trips-the-bug", "after"):
        await client.xadd(STREAM, {"event": encoded(mou(ident))})
    [(_, entries)] = await client.xreadgroup(GROUP, "ingest", {STREAM: ">"}, count=10)
    consumer = IngestConsumer(client, "redis://unused", BrokenAppender(client, services.partitions))
    await consumer.process_with_retry(entries)
    assert set(await stored(services)) == {"before", "after"}
    [(_, copy)] = await client.xrange(REJECTED)
    [error] = msgspec.json.decode(copy[b"errors"])
    assert "internal error" in error["message"] and "injected append bug" in error["message"]
    assert msgspec.json.decode(copy[b"event"])["id"] == "trips-the-bug"
    assert (await client.xpending(STREAM, GROUP))["pending"] == 0


async def test_entries_that_are_not_utf8_are_judged_not_left_pending(
    services: Services, worker: object
) -> None:
    client = services.client
    entries = [
        ("first", {"event": encoded(mou("first"))}),
        ("garbage", {"event": b"\xff\xfe"}),
        ("bad-text", {"event": encoded(mou("bad-text")).replace(b"LG", b"L\x80")}),
        ("binary-other", {"event": encoded(mou("binary-other")), "other": b"\x80"}),
        ("binary-name", {b"\xff": b"x", "event": encoded(mou("binary-name"))}),
        ("last", {"event": encoded(mou("last"))}),
    ]
    # One MULTI: the running worker reads them as one batch, as a quick burst is read.
    pipe = client.pipeline(transaction=not isinstance(client, RedisCluster))
    for _, fields in entries:
        pipe.xadd(STREAM, fields)
    ids = {ident.decode(): label for ident, (label, _) in zip(
        await pipe.execute(), entries, strict=True)}
    await wait_consumed(services)  # FastStream's own parser choked on them: pending forever
    rejected = {ids[f[b"ingest_id"].decode()]: f for _, f in await client.xrange(REJECTED)}
    assert set(rejected) == {"garbage", "bad-text"}
    assert rejected["garbage"][b"event"] == b"\xff\xfe"
    for copy in rejected.values():
        [error] = msgspec.json.decode(copy[b"errors"])
        assert "not valid JSON" in error["message"]
    # One subject, one partition: stored() lists them in log order, which is stream order.
    assert list(await stored(services)) == ["first", "binary-other", "binary-name", "last"]


async def test_a_batch_whose_handling_failed_is_drained_while_running(
    services: Services, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = services.client
    monkeypatch.setattr(consumer_module, "STUCK_MS", 300, raising=False)
    consumer = IngestConsumer(client, redis_url, services.appender)

    async def handler_fails(msg: RedisBatchStreamMessage) -> None:
        # Any failure in or before our handler: FastStream logs it, never redelivers.
        raise RuntimeError("injected failure")

    consumer._handle = handler_fails  # type: ignore[method-assign]
    running = asyncio.create_task(consumer.run())
    try:
        for n in range(3):
            await client.xadd(STREAM, {"event": encoded(mou(f"p-{n}"))})
        await wait_consumed(services)  # not only at the stop's drain
        assert list(await stored(services)) == ["p-0", "p-1", "p-2"]
    finally:
        consumer.stop()
        await running
