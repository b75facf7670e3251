"""Replay: rebuild from the log, compare with the live read model, and promote
the rebuild while queries and publishing go on, with a real worker and API."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import redis

from events.codec import canonical_bytes
from events.stored import event_key
from projections.fold import Query
from projections.runner import Projector
from projections.store import ReadModel, namespace_key
from services.audit import replay as replay_module
from services.audit.parallel import PARALLEL_FROM, Helpers, usable_cores
from services.audit.replay import LOCK, Replay, ReplayError, ReplayRunning, replay
from services.bootstrap import Services
from services.log import keys
from services.log.reader import LogReader
from tests import factory
from tests.integration.audit_helpers import busiest, cli, read, rewrite
from tests.integration.projection_helpers import publish, read_all, until, wait_projected
from tests.processes import ROOT, env_for

pytestmark = pytest.mark.usefixtures("worker")


def corrupt_headline(client: redis.Redis, namespace: str, key: str) -> str:
    entries = namespace_key(namespace, "entries")
    doc = json.loads(client.hget(entries, key))  # type: ignore[arg-type]
    original = doc["headline"]
    doc["headline"] = "something that never happened"
    client.hset(entries, key, json.dumps(doc, separators=(",", ":")))
    return str(original)


class Loop(threading.Thread):
    """Repeats `step` with its own HTTP client until stopped, recording what went wrong."""

    def __init__(self, base: str, step: Callable[[httpx.Client], str | None]) -> None:
        super().__init__(daemon=True)
        self.base, self.step, self.runs, self.failures = base, step, 0, []
        self.stopping = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=30) as client:
            while not self.stopping.is_set():
                try:
                    problem = self.step(client)
                except (httpx.HTTPError, AssertionError, KeyError) as exc:
                    problem = repr(exc)
                self.runs += 1
                if problem:
                    self.failures.append(problem)

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)


async def test_replay_of_twenty_thousand_events_then_promote_under_load(
    services: Services, api_process: Any, sync_redis: redis.Redis
) -> None:
    await publish(services, factory.story(20_000, seed=3, amend=600))
    await wait_projected(services)

    report = await replay(services.client, services.partitions)
    assert report.identical, report.differences[:5]
    assert (report.events, report.differences, report.promoted) == (20_600, [], False)
    assert report.namespace == "blue" and report.live_behind == {}

    victim = "e-123"
    key = event_key(factory.SOURCE, victim)
    original = corrupt_headline(sync_redis, "blue", key)
    found = await services.read_model.entry(factory.SOURCE, victim)
    assert found is not None
    subject = found[0].subject
    expected = [e.id for e in await read_all(services, Query(timeline=f"entity:{subject}"), 1000)]
    first_page = await services.read_model.page(Query(timeline="all"), 300)
    first_of_all = [e.id for e in first_page.entries]
    assert victim in expected and len(expected) > 300

    published: list[str] = []
    headlines: set[str] = set()

    def query(client: httpx.Client) -> str | None:
        got = client.get(f"/v1/timelines/entity/{subject}", params={"limit": 1000}).json()
        if [e["id"] for e in got["entries"]] != expected:
            return f"entity timeline had {len(got['entries'])} entries"
        headlines.update(e["headline"] for e in got["entries"] if e["id"] == victim)
        page = client.get("/v1/timelines/all", params={"limit": 300}).json()
        if [e["id"] for e in page["entries"]] != first_of_all:
            return "the first page of all changed"
        return None

    def publish_late(client: httpx.Client) -> str | None:
        ident = f"late-{len(published)}"
        response = client.post("/v1/events", json={
            "specversion": "1.0", "id": ident, "source": factory.SOURCE,
            "type": "x-test.noted", "subject": "late-corp", "occurred": "2031-01", "data": {}})
        published.append(ident)
        time.sleep(0.02)
        return None if response.status_code == 200 else response.text

    loops = [Loop(api_process.base, query), Loop(api_process.base, publish_late)]
    for loop in loops:
        loop.start()
    try:
        await until(lambda: loops[0].runs >= 2)  # queries saw the corrupted copy first
        runs_before = loops[0].runs
        promoting = asyncio.create_task(replay(services.client, services.partitions, True))
        for _ in range(3000):  # until it holds the lock
            if await services.client.exists(LOCK):
                break
            await asyncio.sleep(0.01)
        with pytest.raises(ReplayRunning):
            await replay(services.client, services.partitions)
        async with httpx.AsyncClient(base_url=api_process.base, timeout=30) as client:
            refused = await client.post("/v1/audit/replay")
        assert refused.status_code == 409 and refused.json()["error"] == "replay-running"
        report = await promoting
        runs_during = loops[0].runs - runs_before
        await until(lambda: loops[0].runs >= runs_before + runs_during + 2)  # then the rebuilt
    finally:
        for loop in loops:
            await asyncio.to_thread(loop.stop)

    assert report.promoted and report.namespace == "green"
    assert report.differences_total == 1, report.differences
    assert msgspec.to_builtins(report.differences) == [{
        "scope": "entry", "problem": "differs", "key": f"{factory.SOURCE} {victim}",
        "source": factory.SOURCE, "id": victim,
        "fields": {"headline": {"live": "something that never happened", "rebuilt": original}}}]
    assert loops[0].failures == [] and runs_during >= 5, (runs_during, loops[0].failures[:3])
    # Queries saw the corrupted copy, then the rebuilt one, and never anything partial.
    assert headlines == {"something that never happened", original}
    assert loops[1].failures == [] and len(published) >= 5
    repaired = await services.read_model.entry(factory.SOURCE, victim)
    assert repaired is not None and repaired[0].headline == original
    assert not await sync_redis_keys(services, "blue")  # the old copy is gone

    await wait_projected(services)
    late = await read_all(services, Query(timeline="entity:late-corp"), 1000)
    assert sorted(e.id for e in late) == sorted(published)  # nothing lost across the flip
    final = await replay(services.client, services.partitions)
    assert final.identical and final.events == 20_600 + len(published)


async def sync_redis_keys(services: Services, namespace: str) -> list[Any]:
    return [k async for k in services.client.scan_iter(match=namespace_key(namespace, "*"))]


async def test_cli_replay_reports_a_missing_timeline_member_and_promote_repairs_it(
    services: Services, sync_redis: redis.Redis, redis_url: str, api_process: Any,
) -> None:
    await publish(services, factory.story(300, seed=4, amend=30))
    await wait_projected(services)
    done = cli(["audit", "replay", "--json"], redis_url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["identical"] is True

    timeline = namespace_key("blue", "tl:topic:ai")
    member = sync_redis.zrange(timeline, 5, 5)[0]
    sync_redis.zrem(timeline, member)
    source, ident = member.decode()[29:].split("\x1f")[:2]
    done = cli(["audit", "replay", "--json"], redis_url)
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["differences"] == [{
        "scope": "timeline", "problem": "missing-live", "key": f"topic:ai: {source} {ident}",
        "source": source, "id": ident, "timeline": "topic:ai", "rebuilt": member.decode()}]

    done = cli(["audit", "replay", "--promote"], redis_url)
    # Repaired, and still exit 1: a scheduled promote must not hide the damage.
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 difference(s)" in done.stdout and "promoted, reads now use green" in done.stdout
    assert await ReadModel(services.client).active() == "green"
    ids = [e.id for e in await read_all(services, Query(timeline="topic:ai"), 1000)]
    assert ident in ids
    assert cli(["audit", "replay"], redis_url).returncode == 0

    sync_redis.zrem(namespace_key("green", "tl:topic:ai"), member)
    async with httpx.AsyncClient(base_url=api_process.base, timeout=60) as client:
        answer = await client.post("/v1/audit/replay", params={"promote": "true"})
    assert answer.status_code == 200, answer.text  # the report says what was repaired
    body = answer.json()
    assert (body["identical"], body["promoted"], body["differences_total"]) == (False, True, 1)
    assert await ReadModel(services.client).active() == "blue"


async def test_a_timeline_member_scored_other_than_0_is_a_difference_promote_repairs(
    services: Services, sync_redis: redis.Redis, redis_url: str, api_process: Any,
) -> None:
    await publish(services, factory.story(300, seed=4, amend=30))
    await wait_projected(services)
    timeline = namespace_key("blue", "tl:topic:ai")
    first = sync_redis.zrange(timeline, 0, 0)[0]
    source, ident = first.decode()[29:].split("\x1f")[:2]

    async def page() -> list[str]:
        async with httpx.AsyncClient(base_url=api_process.base, timeout=30) as client:
            got = await client.get("/v1/timelines/topic/ai", params={"limit": 1000})
        return [e["id"] for e in got.json()["entries"]]

    before = await page()
    sync_redis.zadd(timeline, {first: 5})
    assert await page() != before  # the damage shows

    done = cli(["audit", "replay", "--json"], redis_url)
    assert done.returncode == 1, done.stdout + done.stderr
    assert json.loads(done.stdout)["differences"] == [{
        "scope": "timeline", "problem": "differs", "key": f"topic:ai: {source} {ident}",
        "source": source, "id": ident, "timeline": "topic:ai",
        "fields": {"score": {"live": 5.0, "rebuilt": 0.0}}}]
    promoted = cli(["audit", "replay", "--promote"], redis_url)
    assert promoted.returncode == 1, promoted.stdout + promoted.stderr
    assert "1 difference(s)" in promoted.stdout
    assert await page() == before
    assert cli(["audit", "replay"], redis_url).returncode == 0


async def test_a_live_position_past_the_log_is_a_difference_promote_repairs(
    services: Services, sync_redis: redis.Redis, redis_url: str,
) -> None:
    """A read model kept over a wiped or older log: replay failed blaming the log ('no
    entries after 5 up to 99') and promote could not repair it, though verify passed."""
    await publish(services, factory.story(100, seed=4))
    await wait_projected(services)
    head = (await LogReader(services.client, 8).heads())[7]
    sync_redis.hset(namespace_key("blue", "applied"), "7", 99)
    done = cli(["audit", "replay", "--json"], redis_url)
    assert done.returncode == 1, done.stdout + done.stderr
    assert json.loads(done.stdout)["differences"] == [{
        "scope": "applied", "problem": "differs", "key": "partition 7", "live": 99,
        "rebuilt": head}]
    promoted = cli(["audit", "replay", "--promote"], redis_url)
    assert promoted.returncode == 1, promoted.stdout + promoted.stderr  # repaired, and said
    assert (await ReadModel(services.client).applied())[7] == head
    assert cli(["audit", "replay"], redis_url).returncode == 0


async def story_to_replay(services: Services, monkeypatch: pytest.MonkeyPatch,
                          processes: int | None) -> Helpers | None:
    """3,000 events projected, and the helpers to replay them with (None: in-process),
    used however short the log."""
    monkeypatch.setattr(replay_module, "PARALLEL_FROM", 0)
    await publish(services, factory.story(3000, seed=5))
    await wait_projected(services)
    if processes:
        return Helpers(services.url, services.settings.redis_cluster, processes)
    return None


@pytest.mark.parametrize("processes", [None, 2], ids=["here", "in-helpers"])
async def test_a_log_with_a_hole_is_refused_and_leaves_no_rebuild_behind(
    services: Services, sync_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch,
    processes: int | None,
) -> None:
    helpers = await story_to_replay(services, monkeypatch, processes)
    live_keys = sorted(await sync_redis_keys(services, "blue"))
    live_applied = await ReadModel(services.client, "blue").applied()
    partition = max(live_applied, key=lambda p: live_applied[p])
    hole = live_applied[partition] // 2
    sync_redis.xdel(keys.log(partition), f"{hole}-0")

    with pytest.raises(ReplayError, match=f"partition {partition}: the log has a gap after "
                                          f"{hole - 1};"):
        await replay(services.client, services.partitions, helpers=helpers)

    # the rebuild is dropped (once every helper has stopped)
    assert await sync_redis_keys(services, "green") == []
    assert not await services.client.exists(LOCK)
    assert sorted(await sync_redis_keys(services, "blue")) == live_keys  # live untouched
    assert await ReadModel(services.client, "blue").applied() == live_applied


def alter_entry(client: redis.Redis, partition: int, sequence: int) -> None:
    """Change one log entry's event, its stored hash left as it was (`audit verify`:
    hash-mismatch). The stream is rewritten whole, which drops its consumer groups: they
    are put back where they were, so the worker reads on."""
    log = keys.log(partition)
    groups = client.xinfo_groups(log)
    entries = read(client, partition)
    stream_id, fields = entries[sequence - 1]
    event = json.loads(fields[b"event"])
    event["occurred"] = "1901-01"
    entries[sequence - 1] = (stream_id, {**fields, b"event": canonical_bytes(event)})
    rewrite(client, partition, entries)
    for group in groups:
        client.xgroup_create(log, group["name"], group["last-delivered-id"])


@pytest.mark.parametrize("processes", [None, 2], ids=["here", "in-helpers"])
async def test_an_altered_log_is_refused_and_never_promoted(
    services: Services, sync_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch,
    processes: int | None,
) -> None:
    helpers = await story_to_replay(services, monkeypatch, processes)
    live_keys = sorted(await sync_redis_keys(services, "blue"))
    partition = busiest(sync_redis)
    sequence = int(sync_redis.xlen(keys.log(partition))) // 2
    alter_entry(sync_redis, partition, sequence)

    with pytest.raises(ReplayError, match=f"partition {partition}: hash-mismatch at sequence "
                                          f"{sequence}: "):
        await replay(services.client, services.partitions, promote=True, helpers=helpers)

    assert await ReadModel(services.client).active() == "blue"
    assert await sync_redis_keys(services, "green") == []
    assert sorted(await sync_redis_keys(services, "blue")) == live_keys
    assert not await services.client.exists(LOCK)


async def test_cli_and_api_refuse_to_promote_an_altered_log(
    services: Services, sync_redis: redis.Redis, redis_url: str, api_process: Any,
) -> None:
    await publish(services, factory.story(300, seed=4))
    await wait_projected(services)
    partition = busiest(sync_redis)
    victim = json.loads(read(sync_redis, partition)[4][1][b"event"])
    alter_entry(sync_redis, partition, 5)

    done = cli(["audit", "replay", "--promote"], redis_url)
    async with httpx.AsyncClient(base_url=api_process.base, timeout=60) as client:
        answer = await client.post("/v1/audit/replay", params={"promote": "true"})

    assert done.returncode == 1, done.stdout + done.stderr
    assert (f"the log cannot be replayed: partition {partition}: hash-mismatch at sequence 5: "
            in done.stderr)
    assert answer.status_code == 409, answer.text
    assert answer.json()["error"] == "log-not-replayable"
    assert await ReadModel(services.client).active() == "blue"
    found = await services.read_model.entry(victim["source"], victim["id"])
    assert found is not None and found[0].occurred == victim["occurred"] != "1901-01"


@pytest.mark.parametrize("altered", [False, True], ids=["intact", "altered"])
async def test_entries_appended_during_a_split_rebuild_are_checked_on_from_the_helpers_heads(
    services: Services, sync_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch,
    altered: bool,
) -> None:
    """The helpers check their partitions through the heads the replay started from;
    the parent's catch-up checks the entries appended since, linking on from there."""
    monkeypatch.setattr(replay_module, "PARALLEL_FROM", 0)
    helpers = Helpers(services.url, services.settings.redis_cluster, 2)
    await publish(services, factory.story(3000, seed=6))
    await wait_projected(services)
    later = [{**e, "id": f"late-{e['id']}"} for e in factory.story(300, seed=7)]
    wait_for_live = Replay.wait_for_live
    altered_at: list[tuple[int, int]] = []

    async def append_first(self: Replay, live: ReadModel, heads: dict[int, int]) -> Any:
        await publish(services, later)
        await wait_projected(services)
        partition = busiest(sync_redis)
        altered_at.append((partition, heads[partition] + 1))
        if altered:
            alter_entry(sync_redis, *altered_at[0])
        return await wait_for_live(self, live, heads)

    monkeypatch.setattr(Replay, "wait_for_live", append_first)
    if altered:
        with pytest.raises(ReplayError) as refused:
            await replay(services.client, services.partitions, helpers=helpers)
        partition, sequence = altered_at[0]
        assert f"partition {partition}: hash-mismatch at sequence {sequence}: " in str(
            refused.value)
    else:  # the first entry after each helper's head links on from the head it reported
        report = await replay(services.client, services.partitions, helpers=helpers)
        assert report.identical and report.events == 3000


class SentLate:
    """`call` stands in for a function (or method) that sends a script: its reply comes
    0.3 s late, and once sent it runs whether or not its caller still waits (shielded)."""

    def __init__(self, real: Callable[..., Any]) -> None:
        self.sent: list[asyncio.Future[Any]] = []
        self.first_sent = asyncio.Event()

        async def call(*args: Any) -> Any:  # a function: as a method, it gets `self` too
            async def on_the_server() -> Any:
                await asyncio.sleep(0.3)
                return await real(*args)
            self.sent.append(asyncio.ensure_future(on_the_server()))
            self.first_sent.set()
            return await asyncio.shield(self.sent[-1])

        self.call = call

    async def cancel_once_sent(self, task: asyncio.Future[Any]) -> None:
        """Cancel `task` once the first call is sent; return once every sent one has run."""
        await asyncio.wait_for(self.first_sent.wait(), 60)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.gather(*self.sent)
        assert self.sent


@pytest.mark.parametrize("call", [(Projector, "apply"), (ReadModel, "add_members")],
                         ids=["a-page", "the-held-members"])
async def test_a_cancelled_replay_drops_the_rebuild_only_once_no_write_is_in_flight(
    services: Services, monkeypatch: pytest.MonkeyPatch, call: tuple[type, str],
) -> None:
    await publish(services, factory.story(3000, seed=9))
    await wait_projected(services)
    owner, name = call
    late = SentLate(getattr(owner, name))
    monkeypatch.setattr(owner, name, late.call)
    await late.cancel_once_sent(asyncio.ensure_future(
        replay(services.client, services.partitions)))

    assert await sync_redis_keys(services, "green") == []
    assert not await services.client.exists(LOCK)


async def test_a_cancel_while_the_flip_is_on_its_way_keeps_the_copy_it_made_active(
    services: Services, monkeypatch: pytest.MonkeyPatch,
) -> None:
    await publish(services, factory.story(3000, seed=11))
    await wait_projected(services)
    live_keys = sorted(k.replace(b"blue", b"green") for k in
                       await sync_redis_keys(services, "blue"))
    late = SentLate(replay_module.flip)
    monkeypatch.setattr(replay_module, "flip", late.call)
    await late.cancel_once_sent(asyncio.ensure_future(
        replay(services.client, services.partitions, promote=True)))

    # The flip ran: the copy it made active is whole, and the old one is dropped.
    assert await ReadModel(services.client).active() == "green"
    assert sorted(await sync_redis_keys(services, "green")) == live_keys
    assert await sync_redis_keys(services, "blue") == []
    assert not await services.client.exists(LOCK)


async def test_an_interrupted_cli_replay_exits_130_and_leaves_no_rebuild(
    services: Services, redis_url: str,
) -> None:
    await publish(services, factory.story(10_000, seed=10))
    await wait_projected(services)
    replaying = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", "audit", "replay", env=env_for(redis_url),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        while not await sync_redis_keys(services, "green"):  # until the rebuild is under way
            assert replaying.returncode is None, await replaying.communicate()
            await asyncio.sleep(0.01)
        replaying.send_signal(signal.SIGINT)  # Ctrl-C
        _, err = await asyncio.wait_for(replaying.communicate(), 60)
    finally:
        if replaying.returncode is None:
            replaying.kill()
            await replaying.wait()

    assert replaying.returncode == 130, err.decode()
    assert await sync_redis_keys(services, "green") == []
    assert not await services.client.exists(LOCK)
    assert await ReadModel(services.client).active() == "blue"


async def test_the_cli_says_why_a_replay_was_refused(
    services: Services, sync_redis: redis.Redis, redis_url: str,
) -> None:
    await publish(services, factory.story(300, seed=11))
    await wait_projected(services)
    sync_redis.set(LOCK, "another replay")
    busy = cli(["audit", "replay"], redis_url)
    sync_redis.delete(LOCK)
    applied = await ReadModel(services.client, "blue").applied()
    partition = max(applied, key=lambda p: applied[p])
    hole = applied[partition] // 2
    sync_redis.xdel(keys.log(partition), f"{hole}-0")
    gap = cli(["audit", "replay"], redis_url)

    # Not "cannot reach the server", as both said when the CLI took every RuntimeError
    # for an unreachable server.
    assert busy.returncode == 2, busy.stderr
    assert "refused: a replay is already running" in busy.stderr
    assert gap.returncode == 1, gap.stderr
    assert (f"the log cannot be replayed: partition {partition}: the log has a gap after "
            f"{hole - 1}") in gap.stderr


def helper_of(parent: int) -> int | None:
    """The pid of a rebuild helper `parent` started, if one is running."""
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes()
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):  # not a process, or it has just ended
            continue
        if ppid == parent and b"services.audit.parallel" in command:
            return int(entry.name)
    return None


async def test_a_helper_killed_mid_rebuild_fails_the_api_replay_and_changes_nothing(
    services: Services, api_process: Any,
) -> None:
    if usable_cores() < 2:
        pytest.skip("one core: the replay is not split, so there is no helper to kill")
    await publish(services, factory.story(PARALLEL_FROM, seed=12))  # the least it splits
    await wait_projected(services)
    live_keys = sorted(await sync_redis_keys(services, "blue"))

    async with httpx.AsyncClient(base_url=api_process.base, timeout=300) as client:
        answer = asyncio.ensure_future(client.post("/v1/audit/replay"))
        while (helper := helper_of(api_process.process.pid)) is None:
            assert not answer.done(), answer.result().text
            await asyncio.sleep(0.005)
        os.kill(helper, signal.SIGKILL)  # as the kernel's OOM killer would
        response = await answer

    assert response.status_code == 503, response.text
    body = response.json()
    assert body["error"] == "replay-failed"
    assert "a rebuild helper failed (exit -9)" in body["message"]
    assert await sync_redis_keys(services, "green") == []
    assert not await services.client.exists(LOCK)
    assert await ReadModel(services.client).active() == "blue"
    assert sorted(await sync_redis_keys(services, "blue")) == live_keys
