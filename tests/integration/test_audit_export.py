"""Export the log, restore it into a fresh server with its own data dir, and get
the same log (verify passes, same heads) and the same timelines once a worker
has projected it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import redis

from events.codec import GENESIS, canonical_bytes
from events.envelope import validate_event
from projections.fold import Query
from projections.store import namespace_key
from services import bootstrap, config
from services.audit import digest as digests
from services.audit import export as export_module
from services.audit.export import RestoreRefused, export, restore
from services.audit.verify import verify
from services.bootstrap import Services
from services.log import keys
from services.redis.embedded import EmbeddedServer
from tests import factory, processes
from tests.integration.audit_helpers import cli
from tests.integration.projection_helpers import publish, read_all, wait_projected


async def every_timeline(services: Services) -> dict[str, list[object]]:
    found = {}
    for name in await services.read_model.timeline_names():
        entries = await read_all(services, Query(timeline=name, include_retracted=True), 1000)
        found[name] = [msgspec.to_builtins(e) for e in entries]
    return found


@pytest.mark.usefixtures("worker")
async def test_export_then_restore_into_a_fresh_data_dir(
    services: Services, redis_url: str, tmp_path: Path, logs_dir: Path
) -> None:
    await publish(services, factory.story(3000, seed=8, amend=300))
    await wait_projected(services)
    exported = tmp_path / "log.jsonl"
    done = cli(["export", "--format", "cloudevents-jsonl", "--output", str(exported)], redis_url)
    assert done.returncode == 0, done.stderr
    lines = exported.read_bytes().splitlines()
    assert len(lines) == 3300
    first = json.loads(lines[0])
    assert (first["partition"], first["sequence"], len(first["hash"])) == (0, 1, 64)
    assert {"recordedtime", "recordedby", "schemaversion", "specversion"} <= set(first)
    order = [(json.loads(line)["partition"], json.loads(line)["sequence"]) for line in lines]
    assert order == sorted(order)
    heads = await digests.heads(services.client, services.partitions)

    server = EmbeddedServer(tmp_path / "fresh-data")
    url = server.start()
    worker = None
    try:
        tampered = tmp_path / "tampered.jsonl"
        edited = json.loads(lines[1500])
        edited["occurred"] = "2001"  # still an event the service could store: only the
        # chain shows the change
        tampered.write_bytes(b"\n".join([*lines[:1500], json.dumps(edited).encode(),
                                         *lines[1501:]]) + b"\n")
        done = cli(["restore", str(tampered)], url)
        assert done.returncode == 1 and "restore refused" in done.stderr
        assert "the file was altered" in done.stderr
        with redis.Redis.from_url(url) as fresh:  # nothing written: no log, no restore mark
            assert set(fresh.scan_iter()) <= {b"timeline:meta"}  # its partition count
            assert not fresh.hexists("timeline:meta", "restoring")

        done = cli(["restore", str(exported)], url)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["events"] == 3300
        done = cli(["audit", "verify"], url)
        assert done.returncode == 0, done.stdout
        settings = config.load({"TIMELINE_REDIS_URL": url})
        restored = await bootstrap.connect(settings, url)
        try:
            assert await digests.heads(restored.client, restored.partitions) == heads
            for name in (keys.OWNERS, *(n for p in range(8) for n in (keys.ids(p),
                                                                       keys.versions(p)))):
                assert await restored.client.hgetall(name) == await services.client.hgetall(name)
            again = cli(["restore", str(exported)], url)
            assert again.returncode == 1 and "not empty" in again.stderr

            # The dedupe index came back too: a re-send is a duplicate, not a new event.
            resent = validate_event(factory.story(1, seed=8)[0])
            assert (await restored.appender.append([resent]))[0].status == "duplicate"

            worker = processes.start(["worker"], processes.env_for(url),
                                     logs_dir / "restored-worker.log")
            await wait_projected(restored)
            assert await every_timeline(restored) == await every_timeline(services)
        finally:
            await restored.client.aclose()
    finally:
        if worker is not None:
            processes.stop(worker)
        server.stop()


def export_read_100_bytes_then_leave(redis_url: str) -> tuple[int, str]:
    """`timeline export | head -c 100`: its exit status and stderr."""
    export_process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "export"], env=processes.env_for(redis_url),
        cwd=processes.ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)
    assert export_process.stdout is not None and export_process.stderr is not None
    assert export_process.stdout.read(100)
    export_process.stdout.close()
    with export_process.stderr:
        stderr = export_process.stderr.read().decode()
    return export_process.wait(timeout=60), stderr


async def test_an_export_whose_reader_leaves_early_stops_quietly(
    services: Services, redis_url: str
) -> None:
    """The closed pipe is not reported as the server being unreachable (exit 2);
    Click's quiet exit 1 stands, as the README says."""
    await publish(services, factory.story(1000, seed=3))  # ~1 MB: more than a pipe holds
    status, stderr = await asyncio.to_thread(export_read_100_bytes_then_leave, redis_url)
    assert status == 1, stderr
    assert "cannot reach" not in stderr and "Traceback" not in stderr, stderr


async def test_export_of_a_broken_log_says_so(
    services: Services, sync_redis: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    await publish(services, factory.story(100, seed=2))
    sync_redis.xdel(keys.log(1), "3-0")
    done = cli(["export", "--output", str(tmp_path / "x.jsonl")], redis_url)
    assert done.returncode == 1
    assert "sequence-gap partition 1 sequence 3" in done.stderr


async def test_export_of_a_log_whose_tail_was_deleted_says_so(
    services: Services, sync_redis: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    await publish(services, factory.story(100, seed=2))
    last = sync_redis.xrevrange(keys.log(1), count=1)[0][0].decode()
    sync_redis.xdel(keys.log(1), last)  # what the chain alone cannot show: the head can
    done = cli(["export", "--output", str(tmp_path / "x.jsonl")], redis_url)
    assert done.returncode == 1
    assert "head-mismatch partition 1" in done.stderr


async def test_export_names_a_problem_of_no_one_sequence_without_one(
    services: Services, sync_redis: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    await publish(services, factory.story(20, seed=2))
    sync_redis.xadd(keys.log(8), {"stray": "1"})  # a partition the log does not have
    done = cli(["export", "--output", str(tmp_path / "x.jsonl")], redis_url)
    assert done.returncode == 1
    assert "partition-count partition 8: " in done.stderr, done.stderr  # not "sequence None"


def test_restore_refuses_an_event_publish_would_refuse_and_writes_nothing(
    redis_url: str, sync_redis: redis.Redis, tmp_path: Path
) -> None:
    """A sound one-line chain (its hash recomputed) of an event with a subject that is
    no entity id: `timeline restore` names the line and the field."""
    event = {"specversion": "1.0", "id": "e-1", "source": "urn:t", "type": "x-test.noted",
             "subject": "Bad Subject!", "occurred": "2023", "data": {},
             "recordedtime": "2024-02-11T09:00:00.000001Z", "recordedby": "cli",
             "partition": keys.partition_of("Bad Subject!", 8), "sequence": 1,
             "schemaversion": 1}  # routed where the server's 8 partitions put it
    body = canonical_bytes(event)
    forged = tmp_path / "forged.jsonl"
    forged.write_bytes(export_module.export_line(
        body, hashlib.sha256(GENESIS + body).hexdigest().encode()))
    done = cli(["restore", str(forged)], redis_url)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "restore refused: line 1: `subject`" in " ".join(done.stderr.split())
    assert not sync_redis.exists(keys.log(event["partition"]))
    assert not sync_redis.hexists(keys.META, "restoring")


async def exported_story(
    directory: Path, events: int, seed: int, partitions: int = 8
) -> tuple[Path, dict[int, tuple[int, str]]]:
    """An export of a story published into a server of its own, and that log's heads."""
    server = EmbeddedServer(directory / f"story-{seed}")
    url = server.start()
    lines: list[bytes] = []
    try:
        origin = await bootstrap.connect(config.load(
            {"TIMELINE_REDIS_URL": url, "TIMELINE_PARTITIONS": str(partitions)}), url)
        await publish(origin, factory.story(events, seed=seed))
        assert (await export(origin.client, partitions, lines.append)).problems == []
        heads = await digests.heads(origin.client, partitions)
        await origin.client.aclose()
    finally:
        server.stop()
    exported = directory / f"story-{seed}.jsonl"
    exported.write_bytes(b"".join(lines))
    return exported, heads


class Interrupted(Exception):
    pass


async def restore_stopped_after(services: Services, exported: Path, batches: int) -> None:
    """A restore whose process dies once `batches` batches are written."""
    written = []

    def progress(count: int) -> None:
        written.append(count)
        if len(written) == batches:
            raise Interrupted

    with pytest.raises(Interrupted):
        await restore(services.client, exported, 8, False, on_progress=progress)


async def test_restore_takes_the_files_partition_count_into_an_empty_log(
    services: Services, tmp_path: Path
) -> None:
    exported, heads = await exported_story(tmp_path, 200, seed=6, partitions=4)
    with pytest.raises(RestoreRefused, match="TIMELINE_PARTITIONS"):
        await restore(services.client, exported, 8, partitions_fixed=True)
    assert not [k async for k in services.client.scan_iter("timeline:{p*}")]
    restored = await restore(services.client, exported, 8, partitions_fixed=False)
    assert (restored.events, restored.partitions) == (200, 4)
    assert int(await services.client.hget(keys.META, "partitions")) == 4
    assert (await verify(services.client)).ok
    assert await digests.heads(services.client, 4) == heads


async def test_restore_refuses_a_store_whose_read_model_outlived_its_log(
    services: Services, tmp_path: Path
) -> None:
    """Workers would have taken the restored entries for applied ones and projected none."""
    exported, _ = await exported_story(tmp_path, 20, seed=7)
    await services.client.hset(namespace_key("blue", "applied"), "6", 11)  # a wiped log's
    with pytest.raises(RestoreRefused, match="read model"):
        await restore(services.client, exported, 8, partitions_fixed=False)
    assert not [k async for k in services.client.scan_iter("timeline:{p*}")]
    assert await services.client.hget(keys.META, keys.RESTORING) is None


async def test_a_restore_stopped_half_way_is_reported_and_resumed_by_the_same_file(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str,
    api_process: Any,
) -> None:
    exported, heads = await exported_story(tmp_path, 400, seed=12)
    monkeypatch.setattr(export_module, "WRITE_BATCH", 20)
    await restore_stopped_after(services, exported, batches=5)
    report = await verify(services.client)
    assert not report.ok  # the chains that are there are sound: only the mark says why
    assert [p.kind for p in report.problems] == ["restore-unfinished"]
    assert sum(p.length for p in report.partitions) == 100
    partial = await export(services.client, 8, lambda chunk: None)
    assert [p.kind for p in partial.problems] == ["restore-unfinished"]
    # No digest of part of a file: it was signed as if it were the log.
    with pytest.raises(digests.RestoreUnfinished):
        await digests.build(services.client, 8, None)
    refused = await asyncio.to_thread(cli, ["audit", "digest"], redis_url)
    assert refused.returncode == 1 and "no digest issued: a restore began" in refused.stderr
    assert refused.stdout == ""
    async with httpx.AsyncClient(base_url=api_process.base, timeout=30) as client:
        answer = await client.get("/v1/audit/digest")
    assert answer.status_code == 409 and answer.json()["error"] == "restore-unfinished"

    restored = await restore(services.client, exported, 8, partitions_fixed=False)
    assert (restored.events, restored.resumed) == (400, 100)
    assert (await verify(services.client)).ok
    assert await digests.heads(services.client, 8) == heads
    assert await services.client.hlen(keys.OWNERS) == 400
    with pytest.raises(RestoreRefused, match="not empty"):
        await restore(services.client, exported, 8, partitions_fixed=False)


async def half_restored_beside_another_log(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, Path, dict[int, tuple[int, str]]]:
    """An export whose restore stopped after 3 batches of 20, another log's export, and
    the heads the stopped restore left."""
    exported, _ = await exported_story(tmp_path, 300, seed=13)
    other, _ = await exported_story(tmp_path, 300, seed=14)
    monkeypatch.setattr(export_module, "WRITE_BATCH", 20)
    await restore_stopped_after(services, exported, batches=3)
    return exported, other, await digests.heads(services.client, 8)


async def test_an_unfinished_restore_is_not_resumed_from_another_log(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exported, other, before = await half_restored_beside_another_log(
        services, tmp_path, monkeypatch)
    with pytest.raises(RestoreRefused, match="where this file's chain does not lead"):
        await restore(services.client, other, 8, partitions_fixed=False)
    # an append after the stop: the partition no longer ends where the file's chain leads
    await publish(services, [{**factory.story(1, seed=99)[0], "id": "after-the-stop"}])
    after = await digests.heads(services.client, 8)
    assert after != before
    with pytest.raises(RestoreRefused, match="where this file's chain does not lead"):
        await restore(services.client, exported, 8, partitions_fixed=False)
    assert await digests.heads(services.client, 8) == after  # nothing written


async def test_an_append_while_a_restore_writes_stops_the_restore_and_is_kept(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exported, _ = await exported_story(tmp_path, 300, seed=15)
    monkeypatch.setattr(export_module, "WRITE_BATCH", 20)
    # The file lists partition 0's events first and 7's last: an event appended to 7
    # once the restore has written its first batch lands before the restore reaches 7.
    subject = next(s for s in (f"org-{i}" for i in range(100)) if keys.partition_of(s, 8) == 7)
    late = {**factory.event(1, random.Random(1), subject=subject), "id": "mid-restore"}
    appended: list[asyncio.Task[object]] = []

    def progress(count: int) -> None:
        if not appended:
            appended.append(asyncio.get_running_loop().create_task(publish(services, [late])))

    with pytest.raises(RestoreRefused, match="partition 7 changed during the restore"):
        await restore(services.client, exported, 8, False, on_progress=progress)
    await appended[0]
    entries = await services.client.xrange(keys.log(7))
    assert [msgspec.json.decode(f[b"event"])["id"] for _, f in entries] == ["mid-restore"]
    assert (await verify(services.client)).problems[0].kind == "restore-unfinished"


async def test_a_resume_whose_file_changed_between_its_passes_writes_nothing(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exported, other, before = await half_restored_beside_another_log(
        services, tmp_path, monkeypatch)
    # The first pass reads the file the restore began with, the second another export.
    reads, read_lines = iter([exported, other]), export_module.read_lines
    monkeypatch.setattr(export_module, "read_lines", lambda path: read_lines(next(reads)))
    with pytest.raises(RestoreRefused, match="the file changed since it was checked"):
        await restore(services.client, exported, 8, partitions_fixed=False)
    assert await digests.heads(services.client, 8) == before
