"""Commands packed by hiredis, in C, where redis-py's asyncio connections pack them
in Python.

redis-py's synchronous client packs with hiredis when it is installed (a
dependency of ours, through `redis[hiredis]`); its asyncio connections, which
every process of ours uses, do not: their `pack_command` encodes and joins each
argument in Python. A page's script call (17 arguments) took ~36 µs to pack that
way on the slow host and ~8 µs through `hiredis_packed`; the live feed's call for a
500-event batch (1,506 arguments) 3.4 ms and 0.4 ms; the same bytes
(docs/performance.md, "Packing commands").

Only commands made of plain str, bytes, int and float go through hiredis: it
refuses bool, None and bytearray, but it also takes memoryviews its own way and
crashes the process on an int beyond Python's 4,300-digit limit for text, or a float
subclass whose repr fails. Everything else goes the way redis-py goes, so its bytes
and its errors (DataError, ValueError) stay as they were; so does every command of a
connection whose encoder is not UTF-8 with strict errors.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import hiredis
from redis.asyncio.connection import AbstractConnection

Pack = Callable[..., list[bytes]]
_HUGE = 10**4000  # far below the digits Python refuses to turn into text


def _plain(args: tuple[Any, ...]) -> bool:
    """Every argument is of a type hiredis packs exactly as redis-py does (not a subclass)."""
    for arg in args:
        kind = type(arg)
        if kind is int:
            if not -_HUGE < arg < _HUGE:
                return False
        elif kind is not str and kind is not bytes and kind is not float:
            return False
    return True


def hiredis_packed(pack: Pack) -> Pack:
    """`pack` (redis-py's `pack_command`), done by hiredis whenever it gives the same bytes."""

    @functools.wraps(pack)
    def pack_command(self: AbstractConnection, *args: Any) -> list[bytes]:
        encoder = self.encoder
        if (encoder.encoding != "utf-8" or encoder.encoding_errors != "strict"
                or not args or type(args[0]) not in (str, bytes) or not _plain(args)):
            return pack(self, *args)
        name = args[0]
        # As redis-py does: a command name such as "CONFIG GET" is sent as two arguments.
        if isinstance(name, str):
            return [hiredis.pack_command((*name.encode().split(), *args[1:]))]
        if b" " in name:
            return [hiredis.pack_command((*name.split(), *args[1:]))]
        return [hiredis.pack_command(args)]

    return pack_command
