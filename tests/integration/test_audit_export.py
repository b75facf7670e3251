"""Export the log, restore it into a fresh server with its own data dir, and get
the same log (verify passes, same heads) and the same timelines once a worker
has projected it."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
import redis

from events.envelope import validate_event
from projections.fold import Query
from services import bootstrap, config
from services.audit import digest as digests
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


def log_keys(url: str) -> list[bytes]:
    with redis.Redis.from_url(url) as client:
        return list(client.scan_iter("timeline:{p*}"))


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
        assert log_keys(url) == []  # nothing written

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


async def test_restore_takes_the_files_partition_count_into_an_empty_log(
    services: Services, tmp_path: Path
) -> None:
    server = EmbeddedServer(tmp_path / "four-partitions")
    url = server.start()
    lines: list[bytes] = []
    try:
        four = await bootstrap.connect(
            config.load({"TIMELINE_REDIS_URL": url, "TIMELINE_PARTITIONS": "4"}), url)
        await publish(four, factory.story(200, seed=6))
        assert (await export(four.client, 4, lines.append)).problems == []
        heads = await digests.heads(four.client, 4)
        await four.client.aclose()
    finally:
        server.stop()
    exported = tmp_path / "four.jsonl"
    exported.write_bytes(b"".join(lines))

    with pytest.raises(RestoreRefused, match="TIMELINE_PARTITIONS"):
        await restore(services.client, exported, 8, partitions_fixed=True)
    assert not [k async for k in services.client.scan_iter("timeline:{p*}")]
    restored = await restore(services.client, exported, 8, partitions_fixed=False)
    assert (restored.events, restored.partitions) == (200, 4)
    assert int(await services.client.hget(keys.META, "partitions")) == 4
    assert (await verify(services.client)).ok
    assert await digests.heads(services.client, 4) == heads
