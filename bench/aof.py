"""What the server writes to its AOF: an increment file read back as the
commands it holds, bytes and calls by command and by the family of its key."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

Tally = Counter[tuple[str, str]]
# Where a command's key is, where it is not the first argument (none: no key).
KEY_AT = {"XGROUP": 2, "SELECT": None, "MULTI": None, "EXEC": None}


def commands(data: bytes) -> Iterator[tuple[list[bytes], int]]:
    """Each command of an AOF file (RESP arrays of bulk strings, back to back) with the
    bytes it takes there; `#` annotation lines (aof-timestamp-enabled) are skipped.
    ValueError, naming the byte, where the file is not that (or ends mid-command)."""
    at = 0
    while at < len(data):
        start = at
        if data.startswith(b"#", at):
            at = _line_end(data, at)
            continue
        if not data.startswith(b"*", at):
            raise ValueError(f"no RESP array at byte {at}: {data[at:at + 20]!r}")
        at = _line_end(data, at)
        args = []
        for _ in range(int(data[start + 1:at - 2])):
            if not data.startswith(b"$", at):
                raise ValueError(f"no bulk string at byte {at}: {data[at:at + 20]!r}")
            head = at
            at = _line_end(data, at)
            size = int(data[head + 1:at - 2])
            if data[at + size:at + size + 2] != b"\r\n":
                raise ValueError(f"the bulk string at byte {head} ends early or runs on")
            args.append(data[at:at + size])
            at += size + 2
        yield args, at - start


def _line_end(data: bytes, at: int) -> int:
    """Where the line starting at `at` ends, past its CRLF."""
    end = data.find(b"\r\n", at)
    if end < 0:
        raise ValueError(f"the line at byte {at} has no end")
    return end + 2


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
