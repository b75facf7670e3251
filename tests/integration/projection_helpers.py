"""Helpers shared by projection tests: publish, wait, and the reference fold."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from events.envelope import validate_event
from events.stored import stored_decoder
from projections.entry import Entry
from projections.fold import Query, Timelines
from services.bootstrap import Services
from services.log import keys
from services.queries import projection_lag


async def publish(services: Services, raw: list[dict[str, Any]], batch: int = 500) -> None:
    for start in range(0, len(raw), batch):
        chunk = [validate_event(e, "2025-01-01") for e in raw[start:start + batch]]
        results = await services.appender.append(chunk)
        assert all(r.status == "appended" for r in results), results[:3]


async def until(condition: Callable[[], bool], within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():
            return
        await asyncio.sleep(0.01)
    raise TimeoutError("condition not met")


async def until_equal(probe: Callable[[], Any], expected: Any, within: float = 30.0) -> None:
    """Poll the awaitable `probe()` until it answers `expected` (what another process,
    or a call of its own on a cluster, writes a moment later)."""
    deadline = time.monotonic() + within
    value = None
    while time.monotonic() < deadline:
        value = await probe()
        if value == expected:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {expected!r}, last saw {value!r}")


async def wait_projected(services: Services, within: float = 120.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        lag = await projection_lag(services.log, services.read_model)
        if not any(lag.values()):
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"not projected: entries behind per partition {lag}")


async def reference(services: Services) -> Timelines:
    """The in-memory fold of everything in the log, partition by partition."""
    model = Timelines()
    for partition in range(services.partitions):
        raw = await services.client.xrange(keys.log(partition), "-", "+")
        for _, fields in raw:
            model.apply(stored_decoder.decode(fields[b"event"]))
    return model


async def read_all(services: Services, query: Query, limit: int) -> list[Entry]:
    """Every entry of a query, page by page with cursors."""
    found: list[Entry] = []
    cursor = None
    while True:
        page = await services.read_model.page(query, limit, cursor)
        found += page.entries
        if page.next_cursor is None:
            return found
        assert page.entries or cursor != page.next_cursor
        cursor = page.next_cursor
