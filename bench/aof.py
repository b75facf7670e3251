"""What the server writes to its AOF: an increment file read back as the
commands it holds, bytes and calls by command and by the family of its key."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

import hiredis

from bench.resp import pack

Tally = Counter[tuple[str, str]]
# Where a command's key is, where it is not the first argument (none: no key).
KEY_AT = {"XGROUP": 2, "SELECT": None, "MULTI": None, "EXEC": None}
FEED = 1 << 16  # bytes handed to the RESP reader at a time


def commands(data: bytes) -> Iterator[tuple[list[bytes], int]]:
    """Each command of an AOF file (RESP arrays of bulk strings, back to back, as the
    server writes them) with the bytes it takes there: its RESP encoding, which the
    whole file must add up to. ValueError where it is not that: an annotation line
    (aof-timestamp-enabled, which the service never sets), a value that is not a
    command, bytes that are not whole commands (a file cut off mid-command)."""
    reader = hiredis.Reader()
    read = fed = 0
    while True:
        try:
            command = reader.gets()
        except hiredis.ProtocolError as exc:
            raise ValueError(f"not RESP after byte {read}: {exc}") from None
        if command is False:
            if fed >= len(data):
                break
            # A piece at a time: the reader moves what it holds unread to the front
            # of its buffer as it goes, so the whole file at once took quadratic time.
            reader.feed(data[fed:fed + FEED])
            fed += FEED
            continue
        if not isinstance(command, list) or not all(isinstance(a, bytes) for a in command):
            raise ValueError(f"not a command after byte {read}: {command!r:.60}")
        size = len(pack(*command))
        read += size
        yield command, size
    if read != len(data):
        raise ValueError(f"{len(data) - read} bytes after byte {read} are not whole commands")


def tally(data: bytes, family: Callable[[str], str]) -> tuple[Tally, Tally]:
    """(bytes, calls) per (command, family of its key) in an AOF file."""
    sizes: Tally = Counter()
    calls: Tally = Counter()
    for args, size in commands(data):
        if not args:
            raise ValueError("an empty command")
        name = args[0].decode().upper()
        at = KEY_AT.get(name, 1)
        key = family(args[at].decode(errors="replace")) if at and at < len(args) else ""
        sizes[name, key] += size
        calls[name, key] += 1
    return sizes, calls
