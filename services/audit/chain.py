"""Checking one partition's hash chain from its raw stream entries. Pure: no I/O.

The chain (DESIGN 2): hash_n = sha256(hash_{n-1} || event_n) with hash_0 = 32
zero bytes, where event_n is the exact bytes of the entry's `event` field (the
canonical JSON the append path wrote). Entries are fed in stream order; each
problem is named by partition, sequence and kind:

  hash-mismatch   the stored hash is not sha256(previous hash || this event):
                  this entry's content (or its hash) was changed
  broken-link     the same, right after a missing or foreign entry: the chain
                  cannot be followed across the hole
  sequence-gap    sequences are missing (entries deleted)
  foreign-entry   not our layout: stream id not `<sequence>-0`, fields other than
                  `event` and `hash`, undecodable event, or an event that claims
                  another partition or sequence than where it sits
  head-mismatch   the stored chain head disagrees with the last entry
  partition-count (given the stored count) an entry whose subject routes to another
                  partition under it: the count was changed after the log was written

Each link is checked against the previous entry's *stored* hash, so one edited
entry is one problem rather than a cascade to the end of the partition.

`feed_page` takes XRANGE entries as the server sends them (`[id, [field, value,
...]]`) and checks the common case, an entry in our layout that links, inline;
anything else goes through `feed`, so both report exactly the same problems.
"""

from __future__ import annotations

import binascii
import hashlib
import re
from collections.abc import Sequence
from typing import Any

import msgspec

from events.codec import GENESIS, UNREADABLE
from services.log import keys

ZERO_HEAD = GENESIS.hex()
_HEX64 = re.compile(rb"^[0-9a-f]{64}$")
MAX_PROBLEMS = 1000  # per partition: a wholesale rewrite is reported, not streamed forever


class Problem(msgspec.Struct, kw_only=True):
    """One thing wrong; `partition` is None for what concerns the whole log."""

    kind: str
    message: str
    partition: int | None = None
    sequence: int | None = None


class _Placement(msgspec.Struct, gc=False):
    partition: int
    sequence: int
    subject: str | None = None  # every stored event has one; a test's may not


_placement = msgspec.json.Decoder(_Placement)
_NOWHERE = _Placement(-1, -1)  # what an undecodable event claims in `feed_page`


class PartitionChain:
    """Feed it a partition's entries in stream order, then `finish` with the stored head."""

    def __init__(self, partition: int, wanted: frozenset[int] = frozenset(),
                 partitions: int | None = None) -> None:
        self.partition = partition
        self.wanted = wanted  # sequences whose stored hash a digest check needs
        # The stored partition count, under which each subject must route here (None:
        # not checked, or no longer: one misrouted subject says the count is wrong).
        self.partitions = partitions
        self.routed: set[str] = set()  # subjects seen to route here: checked once each
        self.foreign_at: set[int] = set()  # wanted sequences holding an entry not our own
        self.hashes_at: dict[int, str] = {}
        self.expected = 1
        self.prev = GENESIS
        self.after_hole = False
        self.length = 0
        self.last_sequence = 0
        self.head = ZERO_HEAD
        self.problems: list[Problem] = []
        self.omitted = 0

    @classmethod
    def after(cls, partition: int, sequence: int, head: str) -> PartitionChain:
        """A chain that goes on after `sequence`, whose stored hash `head` ended a check
        made elsewhere (a replay's helper process); `length` counts only what it is fed."""
        chain = cls(partition)
        chain.expected, chain.prev = sequence + 1, bytes.fromhex(head)
        chain.last_sequence, chain.head = sequence, head
        return chain

    @property
    def ok(self) -> bool:
        return not self.problems and not self.omitted

    def report(self, kind: str, message: str, sequence: int | None = None) -> None:
        if len(self.problems) >= MAX_PROBLEMS:
            self.omitted += 1
            return
        self.problems.append(Problem(kind=kind, message=message, partition=self.partition,
                                     sequence=sequence))

    def feed_page(self, entries: Sequence[Sequence[Any]],
                  linked: list[tuple[bytes, bytes]] | None = None) -> None:
        """Feed raw XRANGE entries, `[stream id, [field, value, ...]]` each, in order;
        with `linked`, add (event, hash) of each entry the chain takes in (an export
        leaves out entries not in our layout).

        The loop keeps the chain state in locals (attribute access per entry costs
        as much as the hashing): write it back before `feed` sees an odd entry.
        """
        expected, prev, partition, wanted = self.expected, self.prev, self.partition, self.wanted
        length, stored, routed = self.length, b"", self.routed
        sha256, hexlify, placement = hashlib.sha256, binascii.hexlify, _placement.decode
        for ident, fields in entries:
            if (ident == b"%d-0" % expected and len(fields) == 4
                    and fields[0] == b"event" and fields[2] == b"hash"):
                digest = sha256(prev + fields[1]).digest()
                try:
                    placed = placement(fields[1])
                except UNREADABLE:
                    placed = _NOWHERE
                # equal to a lowercase hexlify: the stored hash is well-formed too
                if (hexlify(digest) == fields[3] and placed.sequence == expected
                        and placed.partition == partition):
                    stored, prev = fields[3], digest
                    if placed.subject not in routed and self.partitions is not None:
                        self._route(placed.subject, expected)
                    if expected in wanted:
                        self.hashes_at[expected] = stored.decode()
                    expected += 1
                    length += 1
                    if linked is not None:
                        linked.append((fields[1], stored))
                    continue
            self._sync(expected, prev, length, stored)
            named = dict(zip(fields[::2], fields[1::2], strict=False))
            if len(named) * 2 < len(fields):  # a name given twice: a dict keeps one value
                self.feed_repeated(ident, fields)
            else:
                self.feed(ident, named)
            if linked is not None and self.length > length:
                linked.append((named[b"event"], named[b"hash"]))
            expected, prev, length, stored = self.expected, self.prev, self.length, b""
        self._sync(expected, prev, length, stored)

    def _sync(self, expected: int, prev: bytes, length: int, stored: bytes) -> None:
        """Store what `feed_page` checked inline since the last sync (`stored`: the
        hash of the last entry it accepted, empty when none)."""
        if stored:
            self.last_sequence, self.head, self.after_hole = expected - 1, stored.decode(), False
        self.expected, self.prev, self.length = expected, prev, length

    def feed(self, stream_id: bytes, fields: dict[bytes, bytes]) -> None:
        ident = stream_id.decode("ascii", "replace")
        slot = _slot(ident)
        event, stored = fields.get(b"event"), fields.get(b"hash")
        reason = None
        if len(fields) != 2 or event is None or stored is None:
            reason = f"fields {sorted(f.decode('utf-8', 'replace') for f in fields)}, " \
                     "not ['event', 'hash']"
        elif len(stored) != 64 or not _HEX64.fullmatch(stored):
            reason = "the hash field is not 64 lowercase hex digits"
        else:
            try:
                placed = _placement.decode(event)
            except UNREADABLE as exc:
                reason = f"the event does not decode: {exc}"
            else:
                if slot is None or placed.sequence != slot or placed.partition != self.partition:
                    reason = (f"stream id {ident} holds an event placed at partition "
                              f"{placed.partition} sequence {placed.sequence}")
        if reason is not None:
            self._foreign(ident, slot, stored, reason)
            return
        assert event is not None and stored is not None and slot is not None
        if placed.subject not in self.routed and self.partitions is not None:
            self._route(placed.subject, slot)
        self._link(slot, event, stored.decode())

    def _route(self, subject: str | None, sequence: int) -> None:
        """Where `subject` routes under the stored count: a count raised or lowered after
        the log was written sends every subject's new events elsewhere, splitting its
        history, so the first misrouted one is reported and checking stops."""
        if subject is None or self.partitions is None or self.partitions <= 0:
            return
        home = keys.partition_of(subject, self.partitions)
        if home == self.partition:
            self.routed.add(subject)
            return
        self.report("partition-count", f"entry {sequence}'s subject {subject!r} routes to "
                    f"partition {home} under the stored partition count "
                    f"({self.partitions}): the count is not the one the log was written "
                    "with", sequence)
        self.partitions = None

    def feed_repeated(self, stream_id: bytes, fields: list[bytes]) -> None:
        """An entry that gives a field name twice (`fields` as XRANGE sends them): which
        `event` is the entry's is not ours to choose (`redis-cli XRANGE` shows the
        first), so it is foreign; a single `hash` still anchors the next link."""
        ident = stream_id.decode("ascii", "replace")
        names = [n.decode("utf-8", "replace") for n in fields[::2]]
        hashes = [v for n, v in zip(fields[::2], fields[1::2], strict=False) if n == b"hash"]
        self._foreign(ident, _slot(ident), hashes[0] if len(hashes) == 1 else None,
                      f"fields {names} repeat a name, not ['event', 'hash']")

    def _foreign(self, ident: str, slot: int | None, stored: bytes | None, reason: str) -> None:
        self.report("foreign-entry", f"entry {ident}: {reason}", slot)
        if slot in self.wanted:  # the head's sequence among them: say what is there
            self.foreign_at.add(slot)
        if slot == self.expected:
            # It sits where the next entry belongs: that sequence is taken, not
            # missing, and its stored hash (if it has one) still anchors the next link.
            self.expected += 1
            if stored is not None and _HEX64.fullmatch(stored):
                self.prev, self.after_hole = bytes.fromhex(stored.decode()), False
            else:
                self.after_hole = True
        else:
            self.after_hole = True

    def _link(self, sequence: int, event: bytes, stored: str) -> None:
        if sequence > self.expected:
            missing = (f"sequence {self.expected} is missing" if sequence == self.expected + 1
                       else f"sequences {self.expected}-{sequence - 1} are missing")
            self.report("sequence-gap", missing, self.expected)
            self.after_hole = True
        recomputed = hashlib.sha256(self.prev + event).hexdigest()
        if recomputed != stored:
            if self.after_hole:
                self.report("broken-link", f"entry {sequence} does not chain from the last "
                            f"entry before the hole (sequence {self.last_sequence})", sequence)
            else:
                self.report("hash-mismatch", f"stored hash {stored[:16]}… but "
                            f"sha256(previous hash || event) is {recomputed[:16]}…: the "
                            "entry was altered", sequence)
        self.prev = bytes.fromhex(stored)
        self.after_hole = False
        self.expected = sequence + 1
        self.length += 1
        self.last_sequence = sequence
        self.head = stored
        if sequence in self.wanted:
            self.hashes_at[sequence] = stored

    def finish(self, head_sequence: int | None, head_hash: str | None) -> None:
        """Compare the stored chain head (`timeline:{pN}:head`) with what the log holds."""
        if head_sequence is None and self.length == 0:
            return
        if head_sequence is None:
            what = "is missing" if head_hash is None else "has no sequence"
            self.report("head-mismatch", f"the stored head ({keys.head(self.partition)}) "
                        f"{what}, but the log ends at sequence {self.last_sequence} hash "
                        f"{self.head[:16]}…")
            return
        if head_sequence != self.last_sequence or (head_hash or ZERO_HEAD) != self.head:
            self.report("head-mismatch", f"the stored head says sequence {head_sequence} "
                        f"hash {(head_hash or '-')[:16]}…, the log ends at sequence "
                        f"{self.last_sequence} hash {self.head[:16]}…", head_sequence)


def _slot(ident: str) -> int | None:
    """The sequence a stream id stands for, when it has our `<sequence>-0` form."""
    ms, sep, seq = ident.partition("-")
    if sep and seq == "0" and ms.isdigit() and not ms.startswith("0"):
        return int(ms)
    return None
