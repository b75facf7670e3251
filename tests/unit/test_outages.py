"""Which server errors the ingest consumer and the projection wait out, and which
they treat as the event's (or our) fault."""

from __future__ import annotations

import pytest
from redis.exceptions import (
    ClusterDownError,
    MasterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from projections.outages import worth_waiting


@pytest.mark.parametrize("error", [
    RedisConnectionError("Connection refused"), RedisTimeoutError("Timeout reading"), OSError(),
    ClusterDownError("The cluster is down"), MasterDownError("Link with MASTER is down"),
    TryAgainError("Multiple keys request during rehashing of slot"),
    ReadOnlyError("You can't write against a read only replica."),
    SlotNotCoveredError("Command # 1 (EVALSHA) slot not covered"),
    OutOfMemoryError("command not allowed when used memory > 'maxmemory'."),
    ResponseError("MISCONF Errors writing to the AOF file: No space left on device"),
    ResponseError("NOREPLICAS Not enough good replicas to write."),
    ResponseError("BUSY Redis is busy running a script."),
    ResponseError("Command # 1 (ZADD k 0 m) of pipeline caused error: "
                  "('MISCONF Errors writing to the AOF file',)"),
], ids=type)
def test_a_server_unavailable_for_a_while_is_waited_out(error: Exception) -> None:
    assert worth_waiting(error)


@pytest.mark.parametrize("error", [
    ResponseError("BUSYGROUP Consumer Group name already exists"),
    ResponseError("Command # 1 (XGROUP CREATE s g 0) of pipeline caused error: "
                  "('BUSYGROUP Consumer Group name already exists',)"),
    ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
    ResponseError("ERR user_script:12: Script attempted to access nonexistent global"),
    ValueError("a bug of ours"),
])
def test_anything_else_is_not(error: Exception) -> None:
    assert not worth_waiting(error)
