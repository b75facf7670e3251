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

The same send loses cancellations on Python 3.11: redis-py sends through
`asyncio.wait_for`, which there returns the send's result when a cancel arrives as
the send completes, and the cancel is gone (python/cpython#86296; 3.12 rewrote
wait_for). A task cancelled at that moment runs on: the worker's lease keeper did,
and its stop waited for it until the process was killed. `run` therefore makes the
send raise the cancel it swallowed, and, for a cancel that was requested before the
send began (which the send cannot tell from one already handled), makes a main task
that returns with a cancel still requested raise it: Ctrl-C is never lost.

Patched on the one base class every asyncio connection inherits its send from
(plain, TLS, Unix socket, the cluster's per-node connections and FastStream's),
because RedisCluster builds its connections itself and takes no connection class.
"""

from __future__ import annotations

import asyncio
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


def cancellation_kept(send: Send) -> Send:
    """`send` raising CancelledError when a cancel of its task was requested during the
    send and did not reach it (Python 3.11's wait_for returned the result instead)."""

    @functools.wraps(send)
    async def send_packed_command(self: AbstractConnection,
                                  command: bytes | str | Iterable[bytes],
                                  check_health: bool = True) -> None:
        task = asyncio.current_task()
        requested = task.cancelling() if task is not None else 0
        await send(self, command, check_health)
        # A cancel that was delivered raised above; one still counted was swallowed.
        if task is not None and task.cancelling() > requested:
            # The command went out and its reply will come: a connection returned to the
            # pool with it unread would hand it to the next caller. redis-py closes the
            # connection on a cancel it sees, as here.
            await self.disconnect(nowait=True)
            raise asyncio.CancelledError

    return send_packed_command


def patch_connections(method: str, wrap: Callable[[Any], Any]) -> None:
    """Idempotent: redis-py's asyncio connections (every class inherits from this one)
    call `wrap(method)` for `method` from now on in this process."""
    current = getattr(AbstractConnection, method)
    if not getattr(current, "patched_by_timeline", False):
        patched = wrap(current)
        patched.patched_by_timeline = True
        setattr(AbstractConnection, method, patched)


def mend_connections() -> None:
    """Idempotent: redis-py's connections, from now on in this process, take closed
    writes for lost ones, keep the cancels their sends swallowed, and pack their
    commands through hiredis (services/redis/packing.py)."""
    patch_connections("send_packed_command",
                      lambda send: closed_write_is_lost_connection(cancellation_kept(send)))
    patch_connections("pack_command", hiredis_packed)


async def _cancel_not_swallowed(coro: Coroutine[Any, Any, T]) -> T:
    """`coro`'s result, or CancelledError when its task was cancelled and something
    below swallowed the cancel: Ctrl-C cancels the main task (asyncio.Runner), and a
    wait_for that swallowed it (above) made a command interrupted half way exit 0,
    as if complete. Raised here, the Runner turns it into KeyboardInterrupt."""
    result = await coro
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
    return result


def run(coro: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` on uvloop, with redis-py's connections mended (`mend_connections`)
    and a cancel of the main task never lost (`_cancel_not_swallowed`)."""
    mend_connections()
    return uvloop.run(_cancel_not_swallowed(coro))
