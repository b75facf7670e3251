"""A replay rebuilt by helper processes (services/audit/parallel.py), against a real
server and real processes: the copy they build equals the live one, they apply every
event, and a helper that fails or loses its parent leaves nothing behind. (A log a
helper cannot replay: test_audit_replay.py, whose hole test runs both ways.)"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys

import msgspec
import pytest

from projections.store import ReadModel, namespace_key
from services.audit import parallel
from services.audit import replay as replay_module
from services.audit.parallel import HelperFailed, Helpers, Job
from services.audit.replay import LOCK, replay
from services.bootstrap import Services
from tests import factory
from tests.integration.projection_helpers import publish, wait_projected


@pytest.fixture(autouse=True)
def always_split(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replay_module, "PARALLEL_FROM", 0)


def helpers(services: Services, processes: int) -> Helpers:
    return Helpers(services.url, services.settings.redis_cluster, processes)


async def keys_of(services: Services, namespace: str) -> list[bytes]:
    return [k async for k in services.client.scan_iter(match=namespace_key(namespace, "*"))]


@pytest.mark.usefixtures("worker")
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


@pytest.mark.usefixtures("worker")
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


@pytest.mark.usefixtures("worker")
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


def stand_ins(monkeypatch: pytest.MonkeyPatch,
              on_sigterm: str) -> list[asyncio.subprocess.Process]:
    """Helpers replaced by processes that report progress at once (as if busy with a
    page), then sleep, and do `on_sigterm` when asked to stop; the list fills as they
    start."""
    script = (f"import signal, sys, time\nsignal.signal(signal.SIGTERM, {on_sigterm})\n"
              "print('progress 1', flush=True)\ntime.sleep(120)\n")
    started: list[asyncio.subprocess.Process] = []

    async def start(job: Job) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        started.append(process)
        return process

    monkeypatch.setattr(parallel, "_start", start)
    return started


async def rebuilding(groups: list[dict[int, int]]) -> asyncio.Future[None]:
    """A rebuild by (stand-in) helpers, once each has reported progress: under way."""
    ready: list[int] = []
    all_ready = asyncio.Event()

    def on_progress(count: int) -> None:
        ready.append(count)
        if len(ready) == len(groups):
            all_ready.set()

    task = asyncio.ensure_future(parallel.rebuild_in_helpers(
        Helpers("redis://127.0.0.1:1"), "green", groups, on_progress, lambda *checked: None))
    await asyncio.wait_for(all_ready.wait(), 60)
    return task


async def test_a_second_cancel_still_waits_for_every_helper_to_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A second to end after SIGTERM, as a real helper finishes its page, then exits.
    started = stand_ins(monkeypatch, "lambda *args: (time.sleep(1.0), sys.exit(0))")
    task = await rebuilding([{0: 5}, {1: 5}])

    task.cancel()
    await asyncio.sleep(0.2)  # the helpers are asked to stop, and take a second
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert [p.returncode for p in started] == [0, 0]


async def test_a_helper_that_does_not_stop_is_killed_after_the_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Deaf to SIGTERM, as a helper stuck on a call that never returns.
    started = stand_ins(monkeypatch, "signal.SIG_IGN")
    monkeypatch.setattr(parallel, "STOP_GRACE_SECONDS", 0.5)
    task = await rebuilding([{0: 5}])

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 60)

    assert [p.returncode for p in started] == [-signal.SIGKILL]


# The replaying process, run in a session of its own as a terminal would run it: it
# survives Ctrl-C (a handler, not SIG_IGN, which its helper would inherit), starts
# one real helper with nothing to rebuild, and says whether the helper answered ok.
PARENT = """
import asyncio, os, signal, sys
import msgspec
from services.audit import parallel
signal.signal(signal.SIGINT, lambda *args: None)
print("ready", flush=True)
async def main() -> None:
    helper = await parallel._start(msgspec.json.decode(sys.argv[1], type=parallel.Job))
    await parallel._follow(helper, lambda count: None, lambda *checked: None)
asyncio.run(main())
print("helper ok", flush=True)
os._exit(0)  # at once: a Ctrl-C during the interpreter's shutdown would end it
"""


async def test_a_ctrl_c_at_the_terminal_does_not_reach_the_helpers(services: Services) -> None:
    job = Job(services.url, services.settings.redis_cluster, "green", {}, 1000)
    parent = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PARENT, msgspec.json.encode(job).decode(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    assert parent.stdout is not None
    assert await asyncio.wait_for(parent.stdout.readline(), 60) == b"ready\n"

    # Ctrl-C, again and again, to the terminal's foreground group (the parent's)
    # while the helper starts: a helper in that group dies before it can ignore it.
    while parent.returncode is None:
        with contextlib.suppress(ProcessLookupError):  # it has just ended
            os.killpg(parent.pid, signal.SIGINT)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(parent.wait(), 0.005)
    out, err = await parent.communicate()

    assert (parent.returncode, out) == (0, b"helper ok\n"), err.decode()
