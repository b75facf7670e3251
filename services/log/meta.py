"""The log's fixed parameters, stored with it: a mismatch refuses to start."""

from __future__ import annotations

from typing import Any

from services.config import DEFAULT_PARTITIONS
from services.log import keys


class PartitionMismatch(RuntimeError):
    pass


async def ensure_partitions(client: Any, wanted: int | None) -> int:
    """Record `wanted` for a new log; refuse when an existing log has another count.

    With `wanted` unset, an existing log keeps its count and a new one gets the default.
    """
    await client.hsetnx(keys.META, "partitions", wanted or DEFAULT_PARTITIONS)
    stored = int(await client.hget(keys.META, "partitions"))
    if wanted is not None and stored != wanted:
        raise PartitionMismatch(
            f"the log has {stored} partitions but TIMELINE_PARTITIONS is {wanted}; "
            "set TIMELINE_PARTITIONS to match (it is fixed when the log is created)"
        )
    return stored
