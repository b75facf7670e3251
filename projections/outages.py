"""Server errors to wait out: the server cannot take the write now, and will later.

Unreachable (a restart, a network cut), or refusing for a while: a cluster failing
over (CLUSTERDOWN, MASTERDOWN, TRYAGAIN, a demoted master answering READONLY, a slot
no node covers yet), out of memory (OOM), unable to persist its writes (MISCONF: the
disk is full), short of the replicas it must write to (NOREPLICAS), or busy with a
long script (BUSY). None of these says anything about the event being written, so
the ingest consumer and the projection wait them out: rejecting or parking the event
instead would set a good event aside.
"""

from __future__ import annotations

import re

from redis.exceptions import (
    ClusterError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)
_REFUSING = (ClusterError, OutOfMemoryError, ReadOnlyError, SlotNotCoveredError, TryAgainError)
# Replies redis-py raises as a plain ResponseError, at the start of the message or, from
# a pipeline, quoted after its annotation. "BUSY " with its space: BUSYGROUP (a consumer
# group that exists already) is an answer, not a refusal.
_REFUSING_CODES = re.compile(
    r"(?:^|of pipeline caused error: \(['\"])(?:MISCONF|NOREPLICAS|BUSY) ")


def worth_waiting(exc: BaseException) -> bool:
    """Whether `exc` is the server being unreachable or refusing writes for a while."""
    if isinstance(exc, UNREACHABLE + _REFUSING):
        return True
    return isinstance(exc, ResponseError) and bool(_REFUSING_CODES.search(str(exc)))
