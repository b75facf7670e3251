"""Key names of the log's write state. Every key of partition N carries the
Redis Cluster hash tag `{pN}`, so one partition's script touches one slot."""

from __future__ import annotations

import zlib

META = "timeline:meta"
RESTORING = "restoring"  # a META field while a restore writes the log: when it began
OWNERS = "timeline:owners"  # (source, id) → owning partition: identity is global


def partition_of(subject: str, partitions: int) -> int:
    """Stable across processes and releases: never Python's salted hash()."""
    return zlib.crc32(subject.encode()) % partitions


def tag(partition: int) -> str:
    return f"{{p{partition}}}"


def log(partition: int) -> str:
    return f"timeline:{tag(partition)}:log"


def ids(partition: int) -> str:
    """(source, id) → "sequence|digest|type|subject": dedupe and target lookups."""
    return f"timeline:{tag(partition)}:ids"


def versions(partition: int) -> str:
    """subject → number of events: `expectedversion` checks."""
    return f"timeline:{tag(partition)}:versions"


def head(partition: int) -> str:
    """The chain head: {"sequence", "hash"}."""
    return f"timeline:{tag(partition)}:head"


def waits(partition: int) -> str:
    """A counter bumped just before WAIT (TIMELINE_WRITE_REPLICAS): WAIT covers the
    connection's last write, and a batch of duplicates writes nothing of its own."""
    return f"timeline:{tag(partition)}:waits"


def write_state(partition: int) -> list[str]:
    return [log(partition), ids(partition), versions(partition), head(partition)]


def stream_id(sequence: int) -> str:
    """Log entries are addressed by their sequence: XRANGE by sequence needs no index."""
    return f"{sequence}-0"
