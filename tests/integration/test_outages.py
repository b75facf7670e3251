"""A server that refuses writes for a while (here: out of memory) is waited out by
the ingest consumer and the projection of a real worker process: the good events
it refused are appended and projected once it accepts writes again, none rejected
or parked."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from projections.parking import parked_key
from projections.runner import PROJECTION
from services.bootstrap import Services
from services.ingest.consumer import REJECTED, STREAM
from tests import factory, processes
from tests.integration.projection_helpers import publish, wait_projected
from tests.integration.test_ingest import encoded, mou, stored, wait_consumed

pytestmark = pytest.mark.usefixtures("worker")
REFUSING_SECONDS = 1.5  # long enough for every retry that would give up on the event


@pytest.fixture
async def memory_restored(services: Services) -> AsyncIterator[None]:
    yield
    await services.client.config_set("maxmemory", "0")


async def out_of_memory_after(services: Services, *commands: tuple[Any, ...]) -> None:
    """`commands`, then the server refusing every write that needs memory, at once."""
    pipe = services.client.pipeline(transaction=True)
    for command in commands:
        pipe.execute_command(*command)
    pipe.config_set("maxmemory", "1")
    await pipe.execute()


async def accept_writes_again(services: Services) -> None:
    await asyncio.sleep(REFUSING_SECONDS)
    await services.client.config_set("maxmemory", "0")


async def parked(services: Services) -> int:
    return sum([await services.client.xlen(parked_key(p, PROJECTION))
                for p in range(services.partitions)])


@pytest.mark.usefixtures("memory_restored")
async def test_the_ingest_consumer_waits_out_a_server_out_of_memory(services: Services) -> None:
    await publish(services, [mou("before")])  # the worker is up and projecting
    await wait_projected(services)

    await out_of_memory_after(services, ("XADD", STREAM, "*", "event", encoded(mou("refused"))))
    await accept_writes_again(services)

    await wait_consumed(services)
    await wait_projected(services)
    assert set(await stored(services)) == {"before", "refused"}
    assert await services.client.xlen(REJECTED) == 0
    assert await services.read_model.entry("urn:test:ingest", "refused") is not None


@pytest.mark.usefixtures("memory_restored")
async def test_the_projection_waits_out_a_server_out_of_memory(services: Services) -> None:
    await publish(services, [mou("before")])
    await wait_projected(services)
    appender = services.appender
    script = appender._script

    async def append_then_refuse(keys: list[str], args: list[Any]) -> Any:
        pipe = services.client.pipeline(transaction=True)
        pipe.evalsha(script.sha, len(keys), *keys, *args)
        pipe.config_set("maxmemory", "1")
        reply, _ = await pipe.execute()
        return reply

    appender._script = append_then_refuse  # type: ignore[assignment]
    await publish(services, [mou("refused")])
    appender._script = script
    await accept_writes_again(services)

    await wait_projected(services)
    assert await parked(services) == 0
    assert await services.read_model.entry("urn:test:ingest", "refused") is not None


def cli_import(redis_url: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.cli", "import", str(path)],
                          env=processes.env_for(redis_url), cwd=processes.ROOT,
                          capture_output=True, text=True, timeout=120, check=False,
                          stdin=subprocess.DEVNULL)


@pytest.mark.usefixtures("memory_restored")
async def test_an_import_the_server_cuts_off_says_what_it_appended(
    services: Services, redis_url: str, tmp_path: Path
) -> None:
    events = factory.story(6000, seed=31)
    path = tmp_path / "big.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    used = int((await services.client.info("memory"))["used_memory"])
    await services.client.config_set("maxmemory", str(used + 3 * 1024 * 1024))

    done = await asyncio.to_thread(cli_import, redis_url, path)
    assert done.returncode == 2, done.stderr
    assert "stopped part-way" in done.stderr and "Traceback" not in done.stderr
    assert "the server refused: " in done.stderr  # out of memory: not "cannot reach"
    cut = json.loads(done.stdout)
    total = await services.log.total()
    # a batch whose partitions were written in part is not counted: at least, not exactly
    assert 0 < cut["appended"] <= total < len(events)

    await services.client.config_set("maxmemory", "0")
    done = await asyncio.to_thread(cli_import, redis_url, path)
    assert done.returncode == 0, done.stderr
    rest = json.loads(done.stdout)
    assert (rest["appended"] + rest["duplicate"], rest["duplicate"]) == (len(events), total)
    assert await services.log.total() == len(events)

