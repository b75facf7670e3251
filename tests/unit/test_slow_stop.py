"""A stop that outlasts its report delay logs where every task is suspended."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from projections.slow_stop import reported_if_slow


async def stuck_inside(gate: asyncio.Event) -> None:
    await waiting_for(gate)


async def waiting_for(gate: asyncio.Event) -> None:
    await gate.wait()


async def test_a_slow_stop_names_the_await_that_does_not_return() -> None:
    gate = asyncio.Event()
    stuck = asyncio.create_task(stuck_inside(gate), name="stuck reader")
    with capture_logs() as logs:
        async with reported_if_slow("the test", after=0.05):
            await asyncio.sleep(0.2)
    gate.set()
    await stuck
    [report] = [e for e in logs if e["event"] == "stop is slow"]
    assert report["stopping"] == "the test"
    [chain] = [c for name, c in report["tasks"].items() if name.startswith("stuck reader#")]
    assert [frame.rsplit(" ", 1)[1] for frame in chain[:-1]] == [
        "stuck_inside", "waiting_for", "wait"]
    assert chain[-1].startswith("waiting on <Future pending")


async def test_a_prompt_stop_says_nothing() -> None:
    with capture_logs() as logs:
        async with reported_if_slow("the test", after=0.2):
            await asyncio.sleep(0)
        await asyncio.sleep(0.3)
    assert logs == []
