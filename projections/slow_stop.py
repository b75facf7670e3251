"""What a stop that takes too long is waiting for, in the log.

A graceful stop waits for the batch in hand and for FastStream's reader tasks.
When one of those waits hangs, the process outlives its grace period and is
killed with nothing said; logging where every task is suspended says which
await never returned.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from types import FrameType
from typing import Any

import structlog

REPORT_AFTER_SECONDS = 5.0

log = structlog.get_logger("stop")


def _frame_of(awaitable: Any) -> FrameType | None:
    for name in ("cr_frame", "gi_frame", "ag_frame"):
        frame = getattr(awaitable, name, None)
        if frame is not None:
            return frame  # type: ignore[no-any-return]
    return None


def _awaited_by(awaitable: Any) -> Any:
    for name in ("cr_await", "gi_yieldfrom", "ag_await"):
        inner = getattr(awaitable, name, None)
        if inner is not None:
            return inner
    return None


def await_chain(task: asyncio.Task[Any]) -> list[str]:
    """Where `task` is suspended, outermost call first: `file:line function` per frame.

    `Task.get_stack` gives only the outermost frame of a suspended coroutine; the
    chain of awaits below it is what names the call that does not return.
    """
    chain: list[str] = []
    awaitable: Any = task.get_coro()
    while awaitable is not None:
        frame = _frame_of(awaitable)
        if frame is None:  # a Future's iterator, or a C-level awaitable
            break
        chain.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        awaitable = _awaited_by(awaitable)
    waiter = getattr(task, "_fut_waiter", None)  # private, but the one place it is kept
    if waiter is not None:
        chain.append(f"waiting on {waiter!r}"[:300])
    return chain


def report() -> dict[str, list[str]]:
    """Every unfinished task of the running loop, by name, with its await chain."""
    return {f"{task.get_name()}#{id(task):x}": await_chain(task)
            for task in asyncio.all_tasks() if not task.done()}


@contextlib.asynccontextmanager
async def reported_if_slow(what: str, after: float = REPORT_AFTER_SECONDS) -> AsyncIterator[None]:
    """Log every task's await chain if the body has not finished `after` seconds in."""

    async def watch() -> None:
        await asyncio.sleep(after)
        log.warning("stop is slow", stopping=what, seconds=after, tasks=report())

    watcher = asyncio.create_task(watch(), name=f"slow-stop watch: {what}")
    try:
        yield
    finally:
        watcher.cancel()
