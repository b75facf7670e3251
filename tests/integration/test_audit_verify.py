"""Verify, digest and the raw log against a real server, with the log tampered
the way someone with direct server access could: each case named by kind,
partition and sequence, through the Python API, the CLI and HTTP."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from services.audit import digest as digests
from services.audit import rawlog
from services.audit.chain import ZERO_HEAD
from services.audit.verify import Report, verify
from services.bootstrap import Services
from services.log import keys
from services.log.reader import BadHead
from tests import factory, processes
from tests.integration.audit_helpers import (
    busiest,
    cli,
    decoded,
    read,
    rechain,
    rewrite,
    rewrite_fields,
    set_head,
)
from tests.integration.projection_helpers import publish

KEY = "the-digest-key"


@pytest.fixture
async def logged(services: Services) -> Services:
    await publish(services, factory.story(400, seed=5, amend=40))
    return services


def problems(report: Report) -> list[tuple[str, int | None, int | None]]:
    found = [p for part in report.partitions for p in part.problems] + report.problems
    return [(p.kind, p.partition, p.sequence) for p in found]


async def test_a_clean_log_verifies(logged: Services, sync_redis: redis.Redis) -> None:
    report = await verify(logged.client)
    assert report.ok and problems(report) == [] and report.entries == 440
    for part in report.partitions:
        sequence, head = sync_redis.hmget(keys.head(part.partition), "sequence", "hash")
        assert part.length == int(sequence or 0) and part.head == (head or b"").decode()


async def test_an_edited_entry_is_a_hash_mismatch(logged: Services,
                                                  sync_redis: redis.Redis) -> None:
    p = busiest(sync_redis)
    entries = read(sync_redis, p)
    stream_id, fields = entries[9]
    event = json.loads(fields[b"event"])
    event["data"]["award"] = "a different prize"  # the content, hash left as it was
    entries[9] = (stream_id, {**fields, b"event": json.dumps(event).encode()})
    rewrite(sync_redis, p, entries)
    assert problems(await verify(logged.client)) == [("hash-mismatch", p, 10)]


async def test_a_deleted_middle_entry_is_a_gap(logged: Services, sync_redis: redis.Redis) -> None:
    p = busiest(sync_redis)
    sync_redis.xdel(keys.log(p), "20-0")
    assert problems(await verify(logged.client)) == [("sequence-gap", p, 20),
                                                    ("broken-link", p, 21)]


async def test_a_foreign_entry_is_named(logged: Services, sync_redis: redis.Redis) -> None:
    stream_id = sync_redis.xadd(keys.log(3), {"note": "appended by hand"})
    found = problems(await verify(logged.client))
    assert found == [("foreign-entry", 3, int(stream_id.split(b"-")[0]))]


async def test_an_entry_that_repeats_its_event_field_is_foreign(
    logged: Services, sync_redis: redis.Redis
) -> None:
    """Streams take a field name twice: a forged first `event` before the real one."""
    p = busiest(sync_redis)
    entries = [(i, [b"event", f[b"event"], b"hash", f[b"hash"]]) for i, f in read(sync_redis, p)]
    stream_id, fields = entries[2]
    forged = b'{"headline":"a forged statement"}'
    entries[2] = (stream_id, [b"event", forged, *fields])
    rewrite_fields(sync_redis, p, entries)
    assert problems(await verify(logged.client)) == [("foreign-entry", p, 3)]
    [shown] = (await rawlog.read_page(logged.client, p, 2, 1)).entries
    assert (shown.event, shown.other_fields) == (forged.decode(), {"event": fields[1].decode()})


async def test_a_log_stream_beyond_the_partition_count(logged: Services,
                                                       sync_redis: redis.Redis) -> None:
    sync_redis.xadd("timeline:{p8}:log", {"event": "{}", "hash": "00" * 32}, id="1-0")
    assert problems(await verify(logged.client)) == [("partition-count", 8, None)]


async def test_a_raised_partition_count_is_reported_once_per_partition(
    logged: Services, sync_redis: redis.Redis
) -> None:
    """Every subject now routes by crc32 % 16: a partition holding one that goes
    elsewhere is reported once, at its first such entry."""
    sync_redis.hset(keys.META, "partitions", 16)
    expected = []
    for p in range(8):
        moved = [int(i.split(b"-")[0]) for i, f in read(sync_redis, p)
                 if keys.partition_of(json.loads(f[b"event"])["subject"], 16) != p]
        expected += [("partition-count", p, moved[0])] if moved else []
    assert len(expected) >= 6  # about half the subjects move: nearly every partition
    report = await verify(logged.client)
    assert not report.ok and problems(report) == expected


async def test_a_deleted_head_key_is_named_missing(logged: Services,
                                                   sync_redis: redis.Redis) -> None:
    p = busiest(sync_redis)
    sync_redis.delete(keys.head(p))
    report = await verify(logged.client)
    assert problems(report) == [("head-mismatch", p, None)]
    message = report.partitions[p].problems[0].message
    assert f"head ({keys.head(p)}) is missing" in message and "None" not in message


async def test_a_last_entry_not_in_our_layout_is_named_at_the_head(
    logged: Services, sync_redis: redis.Redis
) -> None:
    p = busiest(sync_redis)
    entries = [(i, [b"event", f[b"event"], b"hash", f[b"hash"]]) for i, f in read(sync_redis, p)]
    entries[-1] = (entries[-1][0], [*entries[-1][1], b"note", b"added by hand"])
    rewrite_fields(sync_redis, p, entries)
    report = await verify(logged.client)
    last = len(entries)
    assert problems(report) == [("foreign-entry", p, last), ("head-mismatch", p, last)]
    assert "the log holds an entry not in our layout" in report.partitions[p].problems[1].message


async def test_a_naively_truncated_tail_is_a_head_mismatch(logged: Services,
                                                           sync_redis: redis.Redis) -> None:
    p = busiest(sync_redis)
    last = len(read(sync_redis, p))
    sync_redis.xdel(keys.log(p), f"{last}-0")
    assert problems(await verify(logged.client)) == [("head-mismatch", p, last)]


async def test_a_tampered_head_or_key_is_reported_not_a_crash(logged: Services,
                                                              sync_redis: redis.Redis) -> None:
    p = busiest(sync_redis)
    sync_redis.hset(keys.head(p), "sequence", "abc")
    q, r = [n for n in range(logged.partitions) if n != p][:2]
    sync_redis.delete(keys.log(q))
    sync_redis.set(keys.log(q), "not a stream")
    sync_redis.delete(keys.head(r))
    sync_redis.set(keys.head(r), "not a hash")
    report = await verify(logged.client)
    assert sorted(problems(report)) == sorted([("head-mismatch", p, None),
                                               ("foreign-entry", q, None),
                                               ("head-mismatch", r, None)])
    for count in ("eight", "-3"):
        sync_redis.hset(keys.META, "partitions", count)
        report = await verify(logged.client)
        assert not report.ok
        assert ("partition-count", None, None) in problems(report)


async def test_a_digest_signs_only_heads_the_log_holds(logged: Services,
                                                      sync_redis: redis.Redis) -> None:
    p = busiest(sync_redis)
    q, r = [n for n in range(logged.partitions) if n != p][:2]
    last = len(read(sync_redis, p))
    sync_redis.xdel(keys.log(p), f"{last - 1}-0", f"{last}-0")  # the head stays at `last`
    with pytest.raises(BadHead, match=f"partition {p}: the stored head says sequence {last}"):
        await digests.build(logged.client, logged.partitions, KEY)
    set_head(sync_redis, p, last - 2, read(sync_redis, p)[-1][1][b"hash"].decode())
    sync_redis.delete(keys.head(q))
    with pytest.raises(BadHead, match=f"partition {q}: the stored head is missing, but "):
        await digests.build(logged.client, logged.partitions, KEY)
    sync_redis.hset(keys.head(q), mapping={"sequence": "x5", "hash": "ab" * 32})
    with pytest.raises(BadHead, match=f"partition {q}: .* sequence is not a number"):
        await digests.build(logged.client, logged.partitions, KEY)
    sync_redis.hdel(keys.head(q), "sequence")
    with pytest.raises(BadHead, match=f"partition {q}: .* a hash but no sequence"):
        await digests.build(logged.client, logged.partitions, KEY)
    sync_redis.delete(keys.head(q), keys.log(q))  # an empty partition: sequence 0
    sync_redis.delete(keys.head(r))
    sync_redis.set(keys.head(r), "not a hash")
    with pytest.raises(BadHead, match=f"partition {r}: .* another type than a hash"):
        await digests.build(logged.client, logged.partitions, KEY)
    sync_redis.delete(keys.head(r), keys.log(r))
    digest = await digests.build(logged.client, logged.partitions, KEY)
    assert [(digest.partitions[n].sequence, digest.partitions[n].head) for n in (q, r)] == [
        (0, ZERO_HEAD)] * 2
    assert digest.partitions[p].sequence == last - 2


def test_a_head_not_in_the_log_is_refused_by_the_cli_and_http_not_a_crash(
    logged: Services, sync_redis: redis.Redis, redis_url: str, http: httpx.Client
) -> None:
    p = busiest(sync_redis)
    last = len(read(sync_redis, p))
    sync_redis.xdel(keys.log(p), f"{last}-0")
    done = cli(["audit", "digest"], redis_url, TIMELINE_DIGEST_KEY=KEY)
    assert done.returncode == 1 and done.stdout == "", done.stdout + done.stderr
    assert f"no digest issued: partition {p}: the stored head says sequence {last}" in (
        " ".join(done.stderr.split()))
    refused = http.get("/v1/audit/digest")
    assert refused.status_code == 409 and refused.json()["error"] == "head-mismatch"
    assert refused.json()["message"].startswith(f"partition {p}: the stored head says")

    sync_redis.hset(keys.head(p), "sequence", "x5")
    done = cli(["audit", "digest"], redis_url)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "sequence is not a number ('x5')" in " ".join(done.stderr.split())
    refused = http.get("/v1/audit/digest")
    assert refused.status_code == 409 and refused.json()["error"] == "head-mismatch"
    assert refused.json()["message"].startswith(f"partition {p}: the stored head's sequence")
    replayed = http.post("/v1/audit/replay")
    assert replayed.status_code == 409 and replayed.json()["error"] == "log-not-replayable"
    assert f"partition {p}: the stored head's sequence" in replayed.json()["message"]


def truncate_consistently(client: redis.Redis, p: int, drop: int) -> int:
    entries = read(client, p)[:-drop]
    rewrite(client, p, entries)
    set_head(client, p, len(entries), entries[-1][1][b"hash"].decode())
    return len(entries) + drop


def reorder_consistently(client: redis.Redis, p: int) -> None:
    events = decoded(read(client, p))
    events[1], events[2] = events[2], events[1]
    entries = rechain(events)
    rewrite(client, p, entries)
    set_head(client, p, len(entries), entries[-1][1][b"hash"].decode())


async def test_truncation_and_rewrites_are_caught_by_the_digest(
    logged: Services, sync_redis: redis.Redis
) -> None:
    saved = await digests.build(logged.client, logged.partitions, KEY)
    p, q = busiest(sync_redis), 0
    original = truncate_consistently(sync_redis, p, drop=3)
    reorder_consistently(sync_redis, q)
    assert (await verify(logged.client)).ok  # internally consistent: the chain cannot tell
    found = problems(await verify(logged.client, saved, "valid"))
    assert sorted(found) == sorted([("truncated", p, original),
                                    ("digest-mismatch", q, saved.partitions[q].sequence)])


async def test_a_log_that_grew_still_extends_its_digest(logged: Services) -> None:
    saved = await digests.build(logged.client, logged.partitions, None)
    await publish(logged, [{**e, "id": f"later-{i}"}
                           for i, e in enumerate(factory.story(50, seed=9))])
    report = await verify(logged.client, saved)
    assert report.ok and report.entries == 490


def test_cli_verify_exits_0_when_clean_and_1_on_a_problem(
    logged: Services, sync_redis: redis.Redis, redis_url: str
) -> None:
    done = cli(["audit", "verify"], redis_url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verified: 440 entries in 8 partitions" in done.stdout
    p = busiest(sync_redis)
    sync_redis.xdel(keys.log(p), "7-0")
    done = cli(["audit", "verify"], redis_url)
    assert done.returncode == 1
    assert f"sequence-gap partition {p} sequence 7" in done.stdout
    report = json.loads(cli(["audit", "verify", "--json"], redis_url).stdout)
    assert report["ok"] is False
    assert report["partitions"][p]["problems"][0] == {
        "kind": "sequence-gap", "message": "sequence 7 is missing", "partition": p,
        "sequence": 7}


def test_cli_digest_is_signed_and_a_tampered_one_is_refused(
    logged: Services, sync_redis: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    saved = tmp_path / "digest.json"
    done = cli(["audit", "digest", "--output", str(saved)], redis_url, TIMELINE_DIGEST_KEY=KEY)
    assert done.returncode == 0, done.stderr
    digest = json.loads(saved.read_text())
    assert len(digest["signature"]) == 64 and len(digest["partitions"]) == 8
    done = cli(["audit", "verify", "--digest", str(saved)], redis_url, TIMELINE_DIGEST_KEY=KEY)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "signature valid" in done.stdout

    forged = tmp_path / "forged.json"
    digest["partitions"][0]["sequence"] -= 1  # an intruder making their truncation "fit"
    forged.write_text(json.dumps(digest))
    done = cli(["audit", "verify", "--digest", str(forged)], redis_url, TIMELINE_DIGEST_KEY=KEY)
    assert done.returncode == 1 and "digest refused" in done.stderr
    done = cli(["audit", "verify", "--digest", str(saved)], redis_url,
               TIMELINE_DIGEST_KEY="another-key")
    assert done.returncode == 1 and "does not match" in done.stderr

    p = busiest(sync_redis)
    original = truncate_consistently(sync_redis, p, drop=2)
    assert cli(["audit", "verify"], redis_url).returncode == 0
    done = cli(["audit", "verify", "--digest", str(saved)], redis_url, TIMELINE_DIGEST_KEY=KEY)
    assert done.returncode == 1
    assert f"truncated partition {p} sequence {original}" in done.stdout


@pytest.fixture
def signing_api(redis_url: str, logs_dir: Path) -> Iterator[str]:
    """An API process that signs digests (the session's API has no key)."""
    port = processes.free_port()
    process = processes.start(["api", "--port", str(port)],
                              processes.env_for(redis_url, TIMELINE_DIGEST_KEY=KEY),
                              logs_dir / "signing-api.log")
    base = f"http://127.0.0.1:{port}"
    try:
        processes.wait_http(base, process=process)
        yield base
    finally:
        processes.stop(process)


def test_http_digest_and_verify_against_it(
    logged: Services, sync_redis: redis.Redis, signing_api: str
) -> None:
    with httpx.Client(base_url=signing_api, timeout=60) as http:
        report = http.get("/v1/audit/verify").json()
        assert report["ok"] is True and report["entries"] == 440
        assert [p["partition"] for p in report["partitions"]] == list(range(8))
        digest = http.get("/v1/audit/digest").json()
        assert len(digest["signature"]) == 64
        checked = http.post("/v1/audit/verify", json=digest)
        assert checked.status_code == 200 and checked.json()["ok"] is True
        assert checked.json()["digest"]["signature"] == "valid"

        tampered = {**digest, "issued_at": "2020-01-01T00:00:00.000000Z"}
        refused = http.post("/v1/audit/verify", json=tampered)
        assert refused.status_code == 422 and refused.json()["error"] == "bad-signature"
        assert refused.json()["errors"][0]["path"] == "signature"
        unsigned = http.post("/v1/audit/verify", json={**digest, "signature": None})
        assert unsigned.status_code == 422 and unsigned.json()["error"] == "bad-signature"
        bad = {**digest, "partitions": [{**digest["partitions"][0], "head": "nothex"}]}
        malformed = http.post("/v1/audit/verify", json=bad)
        assert malformed.status_code == 422 and malformed.json()["error"] == "bad-digest"
        assert malformed.json()["errors"][0]["path"] == "partitions[0].head"
        assert http.post("/v1/audit/verify", content=b"{nope").status_code == 400

        p = busiest(sync_redis)
        original = truncate_consistently(sync_redis, p, drop=1)
        after = http.post("/v1/audit/verify", json=digest).json()
        assert after["ok"] is False
        assert after["partitions"][p]["problems"] == [{
            "kind": "truncated", "partition": p, "sequence": original,
            "message": f"the digest saw sequence {original}; the log now ends at "
                       f"{original - 1}"}]


def _raw_pages(http: httpx.Client, p: int, limit: int) -> list[dict[str, object]]:
    seen, after = [], 0
    while True:
        page = http.get("/v1/audit/log", params={"partition": p, "after": after, "limit": limit})
        assert page.status_code == 200, page.text
        body = page.json()
        assert body["partition"] == p
        seen += body["entries"]
        if body["next_after"] is None:
            return seen
        after = body["next_after"]


def test_the_raw_log_pages_through_a_partition(
    logged: Services, sync_redis: redis.Redis, http: httpx.Client
) -> None:
    p = busiest(sync_redis)
    stored = read(sync_redis, p)
    # Beside the last entry's own sequence (`<n>-1` after `<n>-0`), then after it.
    last = int(stored[-1][0].split(b"-")[0])
    beside = sync_redis.xadd(keys.log(p), {"note": "beside"}, id=f"{last}-1").decode()
    foreign_id = sync_redis.xadd(keys.log(p), {"note": "by hand"}).decode()
    # 7 a page, and exactly the stored entries a page (so the first ends at `<n>-0`).
    for limit in (7, len(stored)):
        seen = _raw_pages(http, p, limit)
        assert [e["id"] for e in seen] == [i.decode() for i, _ in stored] + [beside, foreign_id]
        assert all(e["event"].encode() == f[b"event"] and e["hash"] == f[b"hash"].decode()
                   for e, (_, f) in zip(seen, stored, strict=False))
        assert seen[-2:] == [{"id": beside, "other_fields": {"note": "beside"}},
                             {"id": foreign_id, "other_fields": {"note": "by hand"}}]
    for params, field in (({}, "partition"), ({"partition": 8}, "partition"),
                          ({"partition": 0, "limit": 0}, "limit"),
                          ({"partition": 0, "after": "x"}, "after")):
        refused = http.get("/v1/audit/log", params=params)
        assert refused.status_code == 400 and refused.json()["errors"][0]["path"] == field


@pytest.mark.skipif(not all(shutil.which(t) for t in ("bash", "curl", "jq", "xxd", "sha256sum")),
                    reason="needs curl, jq, xxd and sha256sum")
def test_the_readme_one_link_check_with_shell_tools(
    logged: Services, api_process: processes.Api
) -> None:
    """The README's hand check of one link, run as written (but for the address)."""
    script = (
        f"page=$(curl -s '{api_process.base}/v1/audit/log?partition=0&after=3&limit=2')\n"
        "{ printf %s \"$page\" | jq -r '.entries[0].hash' | xxd -r -p\n"
        "  printf %s \"$page\" | jq -j '.entries[1].event'; } | sha256sum\n"
        "printf %s \"$page\" | jq -r '.entries[1].hash'\n"
    )
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30,
                          check=True)
    computed, stored = done.stdout.split("\n")[:2]
    assert computed.split()[0] == stored and len(stored) == 64


async def test_raw_log_pages_list_every_entry_once_whatever_the_ids_and_limit(
    services: Services, sync_redis: redis.Redis
) -> None:
    """Every subset of ids where pages can go wrong (injected `0-<n>` before the first
    sequence, `<n>-1` beside `<n>-0`), paged at limits 1 to 4: each entry is listed
    once, in order, and following next_after ends."""
    ids = ["0-1", "0-2", "1-0", "1-1", "2-0", "3-0", "3-1"]
    key = keys.log(5)
    for layout in itertools.chain.from_iterable(
            itertools.combinations(ids, n) for n in range(1, len(ids) + 1)):
        sync_redis.delete(key)
        for ident in layout:
            sync_redis.xadd(key, {"note": ident}, id=ident)
        for limit in range(1, 5):
            seen: list[str] = []
            after: int | None = 0
            for _ in range(len(ids) + 1):  # more pages than entries: it would never end
                assert after is not None
                page = await rawlog.read_page(services.client, 5, after, limit)
                seen += [e.id for e in page.entries]
                after = page.next_after
                if after is None:
                    break
            assert (seen, after) == (list(layout), None), (layout, limit)
