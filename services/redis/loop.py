"""The event loop every process runs on: uvloop, with its one difference that
matters to us mended.

uvloop costs less CPU per socket operation than asyncio's own loop, and the
worker and the API make many small ones (docs/performance.md: end-to-end lag
and pages). But where asyncio reports a write to a connection whose socket is
already closed as a lost connection, uvloop raises RuntimeError ("the handler
is closed", MagicStack/uvloop#506, open). redis-py retries lost connections and
RedisCluster re-reads the slot map on them; it does neither for RuntimeError, so
after a failover an append answered 500 and a projection batch counted a
failure towards parking. `run` therefore makes redis-py's connections raise
ConnectionError for that case before it starts the loop.

Patched on the one base class every asyncio connection inherits its send from
(plain, TLS, Unix socket, the cluster's per-node connections and FastStream's),
because RedisCluster builds its connections itself and takes no connection class.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, TypeVar

import uvloop
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError

from services.redis.packing import hiredis_packed

T = TypeVar("T")
_CLOSED = "the handler is closed"

Send = Callable[[AbstractConnection, "bytes | str | Iterable[bytes]", bool],
                Coroutine[Any, Any, None]]


def closed_write_is_lost_connection(send: Send) -> Send:
    """`send` with uvloop's closed-transport RuntimeError raised as ConnectionError."""

    @functools.wraps(send)
    async def send_packed_command(self: AbstractConnection,
                                  command: bytes | str | Iterable[bytes],
                                  check_health: bool = True) -> None:
        try:
            await send(self, command, check_health)
        except RuntimeError as exc:
            if _CLOSED not in str(exc):
                raise
            # redis-py has already disconnected it; the retry reconnects.
            raise RedisConnectionError(f"connection closed before writing: {exc}") from exc
        except AttributeError as exc:
            # Disconnected by another task meanwhile (RedisCluster drops a failed node's
            # connections): redis-py writes to `_writer`, now None. A lost connection too;
            # raised as such it is retried, where it ended a worker's lease keeper.
            if getattr(self, "_writer", None) is not None:
                raise
            raise RedisConnectionError(f"connection closed before writing: {exc}") from exc

    return send_packed_command


def patch_connections(method: str, wrap: Callable[[Any], Any]) -> None:
    """Idempotent: redis-py's asyncio connections (every class inherits from this one)
    call `wrap(method)` for `method` from now on in this process."""
    current = getattr(AbstractConnection, method)
    if not getattr(current, "patched_by_timeline", False):
        patched = wrap(current)
        patched.patched_by_timeline = True
        setattr(AbstractConnection, method, patched)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` on uvloop, once redis-py's connections take closed writes for lost
    ones and pack their commands through hiredis (services/redis/packing.py)."""
    patch_connections("send_packed_command", closed_write_is_lost_connection)
    patch_connections("pack_command", hiredis_packed)
    return uvloop.run(coro)
