"""Low-level writes that tamper with the log the way an intruder with server
access could, plus the CLI runner the audit tests share."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import redis

from events.codec import GENESIS, canonical_bytes
from services.log import keys
from tests.processes import ROOT, env_for

# Replace a partition's stream wholesale, entry ids and fields as given: the only
# way to put different content at a sequence that is not the stream's last.
# ARGV: per entry its id, how many field names and values follow, then those.
REWRITE = """
redis.call('DEL', KEYS[1])
local i = 1
while i <= #ARGV do
  local count = tonumber(ARGV[i + 1])
  redis.call('XADD', KEYS[1], ARGV[i], unpack(ARGV, i + 2, i + 1 + count))
  i = i + 2 + count
end
"""

Raw = list[tuple[bytes, dict[bytes, bytes]]]


def read(client: redis.Redis, partition: int) -> Raw:
    return list(client.xrange(keys.log(partition), "-", "+"))  # type: ignore[arg-type]


def rewrite(client: redis.Redis, partition: int, entries: Raw) -> None:
    rewrite_fields(client, partition, [
        (stream_id, [b"event", fields[b"event"], b"hash", fields[b"hash"]])
        for stream_id, fields in entries])


def rewrite_fields(client: redis.Redis, partition: int,
                   entries: list[tuple[bytes, list[bytes]]]) -> None:
    """`rewrite` with each entry's fields as XADD takes them: `[name, value, ...]`, a
    name given twice if so."""
    args: list[Any] = []
    for stream_id, fields in entries:
        args += [stream_id, len(fields), *fields]
    client.register_script(REWRITE)(keys=[keys.log(partition)], args=args)


def set_head(client: redis.Redis, partition: int, sequence: int, hash_hex: str) -> None:
    client.hset(keys.head(partition), mapping={"sequence": sequence, "hash": hash_hex})


def rechain(events: list[dict[str, Any]]) -> Raw:
    """Stream entries for `events` (sequence set from position), hashes recomputed: a
    rewrite an intruder makes consistent."""
    prev, out = GENESIS, []
    for sequence, event in enumerate(events, start=1):
        body = canonical_bytes({**event, "sequence": sequence})
        prev = hashlib.sha256(prev + body).digest()
        out.append((f"{sequence}-0".encode(), {b"event": body, b"hash": prev.hex().encode()}))
    return out


def decoded(entries: Raw) -> list[dict[str, Any]]:
    return [msgspec.json.decode(fields[b"event"]) for _, fields in entries]


def busiest(client: redis.Redis, partitions: int = 8) -> int:
    return max(range(partitions), key=lambda p: int(client.xlen(keys.log(p))))


def cli(args: list[str], url: str, cwd: Path = ROOT, timeout: float = 120,
        **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env=env_for(url, **{"COLUMNS": "250", **extra}),
        cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
        check=False,
    )
