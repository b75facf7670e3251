"""Audit figures: verify and replay rates, measured only where the code exists.

The audit paths are built alongside this harness; when they are absent the
figures are reported as "not measured" with the reason, never estimated.
"""

from __future__ import annotations

import importlib
import time
from typing import Any

from services.redis import connection


def missing(*modules: str) -> str | None:
    """Why the audit figures cannot be measured, or None when they can."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            return f"{name} is not available ({exc})"
    return None


def has_as_of() -> bool:
    """Whether timeline queries take `as_of` (the query and the HTTP parameters)."""
    from projections.fold import Query
    from services.queries import TimelineParams

    return "as_of" in Query.__struct_fields__ and "as_of" in TimelineParams.__struct_fields__


async def verify_rate(url: str) -> dict[str, Any]:
    """Events per second for a full verification of the log (in-process, as the CLI runs it)."""
    from services.audit.verify import verify

    client = connection.client(url)
    try:
        started = time.perf_counter()
        report = await verify(client)
        elapsed = time.perf_counter() - started
    finally:
        await client.aclose()
    if not report.ok:
        raise RuntimeError(f"verify found problems in a log the benchmark wrote: {report}")
    return {"rate": report.entries / elapsed, "events": report.entries}


async def replay_rate(url: str, partitions: int, split: bool = True) -> dict[str, Any]:
    """Events per second for a rebuild into the other namespace and its comparison
    with the live copy (no promote), as the CLI and the API run it: a large log rebuilt
    by helper processes unless not `split`."""
    from services.audit.parallel import Helpers
    from services.audit.replay import replay

    client = connection.client(url)
    try:
        started = time.perf_counter()
        helpers = Helpers(url) if split else None
        report = await replay(client, partitions, promote=False, helpers=helpers)
        elapsed = time.perf_counter() - started
    finally:
        await client.aclose()
    return {"rate": report.events / elapsed, "events": report.events,
            "identical": report.identical, "differences": report.differences_total}
