"""Fault tests of the reliability promise, with real processes and servers:
workers killed with SIGKILL during a large publish, the server itself killed
during an HTTP publish, a thousand concurrent re-sends of one batch. The
figures they assert are written to docs/reliability.md (tests/reliability_report.py),
so each of its sections is what the last passing run of its scenario proved."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import redis

from projections.fold import Query
from services.bootstrap import Services
from services.log import keys
from services.redis.embedded import EmbeddedServer, free_port
from tests import factory, processes, reliability_report
from tests.integration.projection_helpers import publish, read_all, reference, wait_projected

Figures = dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def figures() -> Iterator[Figures]:
    found: Figures = {}
    yield found
    if found:
        write_report(found)


def write_report(found: Figures) -> None:
    reliability_report.record("tests/integration/test_faults.py", found)


async def applied_total(services: Services) -> int:
    return sum((await services.read_model.applied()).values())


async def log_ids(client: Any, partitions: int) -> Counter[tuple[str, str]]:
    seen: Counter[tuple[str, str]] = Counter()
    for partition in range(partitions):
        after = "-"
        while True:
            page = await client.xrange(keys.log(partition), after, "+", count=5000)
            for _, fields in page:
                event = msgspec.json.decode(fields[b"event"])
                seen[(event["source"], event["id"])] += 1
            if len(page) < 5000:
                break
            after = "(" + page[-1][0].decode()
    return seen


@pytest.mark.slow
async def test_three_worker_kills_during_a_30k_publish(
    services: Services, redis_url: str, logs_dir: Path, figures: Figures
) -> None:
    events = factory.story(30_000, seed=31, amend=600)
    env = processes.env_for(redis_url)
    publishing = asyncio.create_task(publish(services, events))
    worker = processes.start(["worker"], env, logs_dir / "kill-0.log")
    kills = during_publish = 0
    try:
        for kill in range(1, 4):
            target = await applied_total(services) + 3_000
            deadline = time.monotonic() + 60
            while await applied_total(services) < target:
                assert time.monotonic() < deadline, "the projection stalled"
                await asyncio.sleep(0.02)
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            kills += 1
            during_publish += not publishing.done()
            worker = processes.start(["worker"], env, logs_dir / f"kill-{kill}.log")
        killed_at = await applied_total(services)
        await publishing
        assert killed_at < len(events), "every kill must land before the end"
        assert during_publish >= 1, "at least the first kill lands while publishing"
        await wait_projected(services, within=150)
    finally:
        publishing.cancel()
        processes.stop(worker)

    model = await reference(services)
    q = Query(timeline="all", include_retracted=True)
    got = await read_all(services, q, limit=1000)
    want = model.query(q)
    keys_got = [(e.source, e.id) for e in got]
    duplicates = len(keys_got) - len(set(keys_got))
    missing = len({(e.source, e.id) for e in want} - set(keys_got))
    assert duplicates == 0 and missing == 0
    assert [msgspec.to_builtins(e) for e in got] == [msgspec.to_builtins(e) for e in want]
    assert len(got) == 30_000
    figures["Workers killed (SIGKILL) during a publish"] = {
        "events published (30,000 + 600 corrections/retractions)": len(events),
        "worker kills survived": kills,
        "of which while the publish was still running": during_publish,
        "timeline entries expected / found": f"{len(want)} / {len(got)}",
        "entries missing from the read model": missing,
        "entries twice in the read model": duplicates,
        "read model equal to the in-memory fold of the log": "yes",
    }


def batch_of(start: int, size: int) -> list[dict[str, Any]]:
    return [{"specversion": "1.0", "id": f"k-{n}", "source": "urn:test:kill", "subject":
             f"org-{n % 40}", "type": "x-test.noted", "occurred": "2024-01", "data": {"n": n}}
            for n in range(start, start + size)]


class Publisher(threading.Thread):
    """Posts numbered batches until told to stop; remembers which were acknowledged."""

    def __init__(self, base: str, first: int, size: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.base, self.next, self.size, self.stop_flag = base, first, size, stop
        self.acked: list[int] = []
        self.failed: list[int] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=10) as client:
            while not self.stop_flag.is_set():
                start, self.next = self.next, self.next + self.size * 1000
                try:
                    ok = client.post("/v1/events", json=batch_of(start, self.size)).status_code
                except httpx.HTTPError:
                    ok = 0
                (self.acked if ok == 200 else self.failed).append(start)
                if ok != 200:
                    time.sleep(0.05)


@pytest.mark.slow
def test_server_sigkill_loses_nothing_acknowledged(tmp_path: Path, figures: Figures) -> None:
    # The default appendfsync everysec: the server writes the AOF before it answers, and
    # a killed process leaves what it wrote in the kernel. A power loss (the last second
    # not yet fsynced; TIMELINE_FSYNC=always is for that) is not what this simulates.
    size = 20
    data = tmp_path / "data"
    server = EmbeddedServer(data)
    server.start()
    with redis.Redis.from_url(server.url, decode_responses=True) as direct:
        assert direct.config_get("appendfsync") == {"appendfsync": "everysec"}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    api = processes.start(["api", "--port", str(port)], processes.env_for(server.url),
                          tmp_path / "api.log")
    restarted: EmbeddedServer | None = None
    try:
        processes.wait_http(base, process=api)
        stop = threading.Event()
        publishers = [Publisher(base, n * size, size, stop) for n in range(4)]
        for p in publishers:
            p.start()
        while sum(len(p.acked) for p in publishers) < 60:
            time.sleep(0.02)
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGKILL)  # mid-publish, no warning
        server.process.wait()
        time.sleep(0.5)  # publishers keep trying against a dead server
        stop.set()
        for p in publishers:
            p.join(30)
        acked = [s for p in publishers for s in p.acked]
        failed = [s for p in publishers for s in p.failed]
        assert failed, "the kill must have caught requests in flight or after"

        restarted = EmbeddedServer(data, port=server.port)
        restarted.start()
        client = redis.Redis.from_url(restarted.url)
        try:
            seen = asyncio.run(_sync_ids(restarted.url))
            wanted = {("urn:test:kill", e["id"]) for s in acked for e in batch_of(s, size)}
            lost = wanted - set(seen)
            assert not lost, f"{len(lost)} acknowledged events lost"
            assert all(count == 1 for count in seen.values())
            verify = subprocess.run(
                [sys.executable, "-m", "services.cli", "audit", "verify"],
                env=processes.env_for(restarted.url), cwd=processes.ROOT,
                capture_output=True, text=True, timeout=60)
            assert verify.returncode == 0, verify.stdout + verify.stderr

            processes.wait_http(base, "/readyz", timeout=20, process=api)
            statuses: Counter[str] = Counter()
            with httpx.Client(base_url=base, timeout=30) as http:
                for start in failed + acked[:20]:  # failed ones, and some already kept
                    answer = http.post("/v1/events", json=batch_of(start, size))
                    assert answer.status_code == 200, answer.text
                    statuses.update(r["status"] for r in answer.json()["results"])
            assert statuses["conflict"] == 0
            after = asyncio.run(_sync_ids(restarted.url))
            every = {("urn:test:kill", e["id"]) for s in acked + failed for e in batch_of(s, size)}
            assert set(after) == every and all(c == 1 for c in after.values())
        finally:
            client.close()
    finally:
        processes.stop(api)
        if restarted is not None:
            restarted.stop()
        server.stop()
    figures["Server killed (SIGKILL) during an HTTP publish, appendfsync everysec"] = {
        "events acknowledged (200) before the kill": len(acked) * size,
        "acknowledged events missing after restart": len(lost),
        "hash chains after restart": "verified (`timeline audit verify` exit 0)",
        "requests that failed during the outage, then retried": len(failed),
        "retried events answered duplicate / appended / conflict":
            f"{statuses['duplicate']} / {statuses['appended']} / {statuses['conflict']}",
        "events stored twice": 0,
        "not simulated": "a power loss: a killed process leaves its AOF writes in the "
                         "kernel; up to the last second could be lost then "
                         "(`TIMELINE_FSYNC=always` for none)",
    }


async def _sync_ids(url: str) -> Counter[tuple[str, str]]:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        partitions = int(await client.hget(keys.META, "partitions"))
        return await log_ids(client, partitions)
    finally:
        await client.aclose()


async def test_a_thousand_concurrent_resends_of_one_batch(
    api_process: processes.Api, services: Services, figures: Figures
) -> None:
    batch = batch_of(0, 10)
    limit = asyncio.Semaphore(50)
    dropped = 0

    async def send(client: httpx.AsyncClient) -> list[dict[str, Any]]:
        nonlocal dropped
        async with limit:
            for _ in range(5):
                try:
                    answer = await client.post("/v1/events", json=batch)
                    break
                except httpx.TransportError:  # a loaded machine drops a keep-alive: re-send
                    dropped += 1
            else:
                raise AssertionError("five dropped connections in a row")
            assert answer.status_code == 200, answer.text
            results: list[dict[str, Any]] = answer.json()["results"]
            return results

    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=api_process.base, timeout=60, limits=limits) as client:
        replies = await asyncio.gather(*(send(client) for _ in range(1000)))
    appended: Counter[str] = Counter()
    positions: dict[str, set[str]] = {}
    for results in replies:
        for r in results:
            if r["status"] == "appended":
                appended[r["id"]] += 1
            assert r["status"] in ("appended", "duplicate")
            positions.setdefault(r["id"], set()).add(r["position"])
    # A re-send after a dropped connection may find its first try appended: then no
    # answer says "appended" for that event, but never more than one does.
    assert all(appended[e["id"]] <= 1 for e in batch)
    if dropped == 0:
        assert appended == Counter({e["id"]: 1 for e in batch})
    assert all(len(p) == 1 for p in positions.values()), "every answer names one position"
    stored = await log_ids(services.client, services.partitions)
    assert stored == Counter({("urn:test:kill", e["id"]): 1 for e in batch})
    figures["1,000 concurrent re-sends of one 10-event batch over HTTP"] = {
        "requests (all 200)": len(replies),
        "connections dropped and re-sent": dropped,
        "answers appended / duplicate": f"{sum(appended.values())} / "
                                        f"{sum(len(r) for r in replies) - sum(appended.values())}",
        "events in the log (10 expected)": sum(stored.values()),
    }
