"""A replay rebuilt by helper processes (services/audit/parallel.py), against a real
server and real processes: the copy they build equals the live one, they apply every
event, and a helper that fails or loses its parent leaves nothing behind. (A log a
helper cannot replay: test_audit_replay.py, whose hole test runs both ways.)"""

from __future__ import annotations

import asyncio
import subprocess
import sys

import msgspec
import pytest

from projections.store import ReadModel, namespace_key
from services.audit import replay as replay_module
from services.audit.parallel import HelperFailed, Helpers, Job
from services.audit.replay import LOCK, replay
from services.bootstrap import Services
from tests import factory
from tests.integration.projection_helpers import publish, wait_projected

pytestmark = pytest.mark.usefixtures("worker")


@pytest.fixture(autouse=True)
def always_split(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replay_module, "PARALLEL_FROM", 0)


def helpers(services: Services, processes: int) -> Helpers:
    return Helpers(services.url, services.settings.redis_cluster, processes)


async def keys_of(services: Services, namespace: str) -> list[bytes]:
    return [k async for k in services.client.scan_iter(match=namespace_key(namespace, "*"))]


async def test_helpers_rebuild_every_event_and_the_promoted_copy_is_identical(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    await publish(services, factory.story(3000, seed=8, amend=200))
    await wait_projected(services)
    counted: list[int] = []

    async def not_here(*args: object) -> None:
        raise AssertionError("the replaying process rebuilt the log itself")

    monkeypatch.setattr(replay_module.Replay, "rebuild", not_here)  # this process only

    report = await replay(services.client, services.partitions, promote=True,
                          on_progress=counted.append, helpers=helpers(services, 3))

    assert report.identical, report.differences[:5]
    assert (report.events, report.promoted, report.namespace) == (3200, True, "green")
    # The helpers' progress (the catch-up that follows counts nothing): every event
    # was applied by one of them.
    assert sum(counted) == 3200
    assert await keys_of(services, "blue") == []  # the old copy is dropped


async def test_a_helper_that_cannot_connect_fails_the_replay_cleanly(
    services: Services,
) -> None:
    await publish(services, factory.story(200, seed=6))
    await wait_projected(services)

    with pytest.raises(HelperFailed, match="a rebuild helper failed"):
        await replay(services.client, services.partitions,
                     helpers=Helpers("redis://127.0.0.1:1", False, 2))

    assert await keys_of(services, "green") == []
    assert not await services.client.exists(LOCK)


async def test_a_helper_whose_parent_is_gone_exits_without_writing(services: Services) -> None:
    await publish(services, factory.story(200, seed=7))
    await wait_projected(services)
    heads = await ReadModel(services.client, "blue").applied()
    job = Job(services.url, services.settings.redis_cluster, "green", heads, 1000)

    helper = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.audit.parallel", stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # stdin closed right after the job: what a helper sees when its parent has died
    out, err = await asyncio.wait_for(
        helper.communicate(msgspec.json.encode(job) + b"\n"), 120)

    assert helper.returncode == 3, err.decode()
    assert b"ok" not in out
    assert await ReadModel(services.client, "green").applied() == {}
