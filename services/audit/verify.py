"""Verify the log from the raw streams: every partition's chain, its head, the
partition count, and optionally that the log still extends a saved digest.

Reads XRANGE pages of `PAGE` entries per call, unparsed by redis-py, and checks
them in process (services/audit/chain.py), partitions concurrently: no per-entry
round trips, and the server reads the next pages while this process hashes one.
Safe on a live log: the head is read before and after the scan, so an append
racing the check is not mistaken for tampering.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import msgspec
from redis.exceptions import ResponseError

from services.audit import digest as digests
from services.audit.chain import PartitionChain, Problem
from services.log import keys
from services.log.reader import BadHead, RawRange, parse_head

# Entries per XRANGE call. The reply holds two lists per entry, which the cyclic
# GC tracks: pages small enough to be freed before a generation-0 collection
# (700 allocations) keep them from being promoted, and in a process with a large
# heap the full collections that promotion triggers cost twice the verification
# itself (measured holding 200,000 generated events, as the benchmark does: 7.6 µs
# of CPU per entry with pages of 5,000, 2.3 with 300).
PAGE = 300
Linked = Callable[[list[tuple[bytes, bytes]]], object]  # (event, hash) pairs that chain
_LOG_KEY = re.compile(r"^timeline:\{p(\d+)\}:log$")


class PartitionReport(msgspec.Struct):
    partition: int
    length: int
    head: str
    ok: bool
    problems: list[Problem]
    problems_omitted: int = 0


class DigestCheck(msgspec.Struct):
    issued_at: str
    signature: str  # "valid" | "unsigned"


class Report(msgspec.Struct):
    ok: bool
    partitions: list[PartitionReport]
    problems: list[Problem]  # about the whole log rather than one partition
    entries: int
    seconds: float
    digest: DigestCheck | None = None


def _wrong_type(exc: ResponseError) -> bool:
    """A key of ours holding another type: tampering to report, not a failure."""
    return str(exc).startswith("WRONGTYPE")


async def stored_partitions(client: Any) -> int:
    return int(await client.hget(keys.META, "partitions") or 0)


async def _partition_count(client: Any) -> tuple[int, list[Problem]]:
    """The log's partition count, or 0 and the problem when what is stored is not one
    (every log stream is then reported as beyond it)."""
    try:
        count = await stored_partitions(client)
    except (ValueError, ResponseError) as exc:
        if isinstance(exc, ResponseError) and not _wrong_type(exc):
            raise
        count = -1
    if count >= 0:
        return count, []
    return 0, [Problem(kind="partition-count", message=(
        "the log's stored partition count (timeline:meta) is not a number of partitions"))]


async def restore_mark(client: Any) -> list[Problem]:
    try:
        began = await client.hget(keys.META, keys.RESTORING)
    except ResponseError as exc:
        if not _wrong_type(exc):
            raise
        return []  # reported already, as the partition count it cannot hold
    if began is None:
        return []
    return [Problem(kind="restore-unfinished", message=(
        f"a restore began at {began.decode(errors='replace')} and did not finish: the log "
        "may hold only part of its file (`timeline restore FILE` again finishes it)"))]


async def log_partitions(client: Any) -> set[int]:
    """The partition number of every log stream that exists."""
    found = set()
    async for name in client.scan_iter(match="timeline:{p*}:log", count=1000):
        matched = _LOG_KEY.match(name.decode() if isinstance(name, bytes) else name)
        if matched:
            found.add(int(matched.group(1)))
    return found


class Head(NamedTuple):
    sequence: int | None
    hash: str | None
    unreadable: str = ""  # why the stored head is not one (tampered with)


async def read_head(client: Any, partition: int) -> Head:
    try:
        reply = await client.hmget(keys.head(partition), "sequence", "hash")
    except ResponseError as exc:
        reply = exc  # another type than a hash: parse_head says so
    try:
        return Head(*parse_head(partition, reply))
    except BadHead as exc:
        return Head(None, None, exc.why)


async def check_partition(
    client: Any, partition: int, wanted: frozenset[int] = frozenset(),
    xrange: RawRange | None = None, write: Linked | None = None, partitions: int | None = None,
) -> PartitionChain:
    """Check one partition's chain and head, and with `partitions` (the stored count)
    that its subjects route to it; with `write`, hand it each page's linked (event,
    hash) pairs as they are checked (the export)."""
    xrange = xrange or RawRange(client)
    before = await read_head(client, partition)
    chain = PartitionChain(partition, wanted | {before.sequence or 0}, partitions)
    start = b"-"
    while True:
        try:
            page = await xrange(keys.log(partition), start, b"+", PAGE)
        except ResponseError as exc:
            if not _wrong_type(exc):
                raise
            chain.report("foreign-entry", "the log's key holds another type than a stream")
            return chain
        good: list[tuple[bytes, bytes]] = []
        chain.feed_page(page, good if write else None)
        if write and good:
            write(good)
        if len(page) < PAGE:
            break
        start = b"(" + page[-1][0]
        del page, good  # not held across the next wait: see PAGE
    _check_head(chain, before, await read_head(client, partition))
    return chain


def _check_head(chain: PartitionChain, before: Head, after: Head) -> None:
    """The head read before the scan must be in the log; nothing may lie beyond the
    head read after it (appends in between move both, so they pass)."""
    if before.unreadable or after.unreadable:
        chain.report("head-mismatch", before.unreadable or after.unreadable)
        return
    seq, value, seq_after = before.sequence, before.hash, after.sequence
    if seq is None and seq_after is None:
        chain.finish(None, value)
        return
    held = chain.hashes_at.get(seq or 0)
    if seq and held != value:
        there = "nothing" if held is None else held[:16] + "…"
        if held is None and seq in chain.foreign_at:
            there = "an entry not in our layout (see its foreign-entry)"
        chain.report("head-mismatch", f"the stored head says sequence {seq} hash "
                     f"{(value or '-')[:16]}…, the log holds {there} there", seq)
    elif chain.last_sequence > (seq_after or 0):
        chain.report("head-mismatch", f"the log holds entries up to sequence "
                     f"{chain.last_sequence}, beyond its stored head {seq_after}", seq_after)


def beyond_count(streams: set[int], partitions: int) -> list[Problem]:
    """Streams above the count; a count raised above the log's own is seen as the
    chains are walked (subjects that route elsewhere: check_partition)."""
    return [Problem(kind="partition-count", partition=extra, message=(
        f"a log stream exists for partition {extra}, but the log has {partitions} "
        "partitions")) for extra in sorted(streams - set(range(partitions)))]


async def verify(client: Any, digest: digests.Digest | None = None,
                 signature: str = "unsigned") -> Report:
    started = time.perf_counter()
    partitions, problems = await _partition_count(client)
    wanted = digests.wanted(digest) if digest else {}
    xrange = RawRange(client)
    chains = await asyncio.gather(*(
        check_partition(client, p, wanted.get(p, frozenset()), xrange, partitions=partitions)
        for p in range(partitions)))
    problems += beyond_count(await log_partitions(client), partitions)
    problems += await restore_mark(client)
    if digest is not None:
        for problem in digests.extension_problems(
            digest, partitions, {c.partition: c.last_sequence for c in chains},
            {c.partition: c.hashes_at for c in chains},
        ):
            if problem.partition is None or problem.partition >= partitions:
                problems.append(problem)
            else:
                chains[problem.partition].problems.append(problem)
    reports = [PartitionReport(c.partition, c.length, c.head, c.ok, c.problems, c.omitted)
               for c in chains]
    return Report(
        ok=not problems and all(r.ok for r in reports), partitions=reports, problems=problems,
        entries=sum(r.length for r in reports), seconds=round(time.perf_counter() - started, 4),
        digest=DigestCheck(digest.issued_at, signature) if digest else None,
    )
