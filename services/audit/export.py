"""Export the whole log as CloudEvents JSON lines, and restore such a file into
an empty log.

An export line is the stored event with its chain hash added as the last
attribute, `{...stored event...,"hash":"<hex>"}`, in partition then sequence
order. Everything the log stored is there (server-set attributes included), and
the text before `,"hash":"` plus `}` is exactly the bytes the chain hashed, so
tools/verify_chain.py can check a file with the standard library alone.

Restore reads the file twice: first it re-verifies every line (each an event
publish would accept, with server-set attributes as the append path writes them;
consecutive sequences from 1 per partition, every hash, no (source, id) twice,
subjects routed to their partitions) and refuses the whole file at the first break,
writing nothing; then it writes each partition in batches with one script call
each, which also refuses if anyone appended meanwhile. Afterwards the log, its
dedupe index, identity owners, subject versions and chain heads are as the original's, so verify
passes and a digest has the original's heads. The read model is rebuilt by the
normal projection worker.

A restore stopped half-way (a lost connection, a killed process) leaves a mark in
the log's meta hash, which verify reports; restoring the same file again resumes
it. Each partition it wrote is a prefix of the file's, which its chain head proves:
the head must be the file's hash at that sequence, or the restore is refused.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from events import catalog
from events.codec import GENESIS, SERVER_SET, UNREADABLE, canonical_bytes, content_digest
from events.envelope import validate_event
from events.errors import EventValidationError
from events.stored import event_key, stored_decoder
from events.upcast import upcast
from projections.store import BASE, NAMESPACES, namespace_key
from services.audit.chain import Problem
from services.audit.verify import beyond_count, check_partition, log_partitions, restore_mark
from services.auth import tokens
from services.log import keys
from services.log.append import now_rfc3339
from services.log.reader import RawRange
from services.redis import scripts

FORMATS = ("cloudevents-jsonl",)
WRITE_BATCH = 1000
MAX_PARTITIONS = 1024
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_RECORDED = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?Z$")
_packer = msgspec.msgpack.Encoder()


def export_line(event: bytes, hash_hex: bytes) -> bytes:
    """The stored event (a JSON object) with `hash` appended as its last attribute."""
    return event[:-1] + b',"hash":"' + hash_hex + b'"}\n'


@dataclass
class ExportSummary:
    events: int = 0
    problems: list[Problem] = field(default_factory=list)


async def export(
    client: Any, partitions: int, write: Callable[[bytes], object],
    on_progress: Callable[[int], object] = lambda n: None,
) -> ExportSummary:
    """Write every stored event; the chain, each stored head, the partition count and
    an unfinished restore are checked, as `verify` checks them, and any problem returned
    (entries not in our layout are left out of the file)."""
    summary = ExportSummary()
    xrange = RawRange(client)  # unparsed pages

    def lines(linked: list[tuple[bytes, bytes]]) -> None:
        write(b"".join([export_line(event, hash_hex) for event, hash_hex in linked]))
        summary.events += len(linked)
        on_progress(len(linked))

    for partition in range(partitions):
        chain = await check_partition(client, partition, xrange=xrange, write=lines,
                                      partitions=partitions)
        summary.problems += chain.problems
    summary.problems += beyond_count(await log_partitions(client), partitions)
    summary.problems += await restore_mark(client)  # a copy of part of a log is no copy
    return summary


class RestoreRefused(ValueError):
    """The file or the target log is not fit for restore; nothing was written."""


@dataclass
class _Partition:
    expected: int = 1
    prev: bytes = GENESIS


@dataclass
class CheckedFile:
    """What the first pass learned: enough to route and to report; and the file's hash
    at each sequence it was asked for (`marks`: where an unfinished restore stopped)."""

    events: int = 0
    heads: dict[int, tuple[int, str]] = field(default_factory=dict)
    subjects: dict[str, int] = field(default_factory=dict)
    marks: dict[int, int] = field(default_factory=dict)
    hashes_at: dict[int, str] = field(default_factory=dict)


class Line(msgspec.Struct):
    sequence: int
    partition: int
    hash: str
    event: bytes  # canonical bytes, as the log stores them
    key: str
    ids_value: str
    subject: str
    type: str
    amends: str = ""  # an amendment's target, as an identity key
    fix: Any = None  # a correction's new data for its target


def parse_line(number: int, text: bytes | str) -> Line:
    """One export line, re-encoded canonically; RestoreRefused names what is wrong."""
    try:
        raw = msgspec.json.decode(text)
    except UNREADABLE as exc:
        raise RestoreRefused(f"line {number}: not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise RestoreRefused(f"line {number}: not a JSON object")
    for name, kind in (("hash", str), ("partition", int), ("sequence", int), ("source", str),
                       ("id", str), ("subject", str), ("type", str)):
        if not isinstance(raw.get(name), kind) or isinstance(raw.get(name), bool):
            raise RestoreRefused(f"line {number}: `{name}` is missing or not a {kind.__name__}")
    if not _HEX64.fullmatch(raw["hash"]):
        raise RestoreRefused(f"line {number}: `hash` is not 64 lowercase hex digits")
    body = canonical_bytes(raw)
    _check_event(number, raw, body)
    line = Line(
        sequence=raw["sequence"], partition=raw["partition"], hash=raw["hash"], event=body,
        key=event_key(raw["source"], raw["id"]), subject=sys.intern(raw["subject"]),
        ids_value=f"{raw['sequence']}|{content_digest(raw)}|{raw['type']}|{raw['subject']}",
        type=sys.intern(raw["type"]),
    )
    if line.type in _AMENDMENTS:  # its data decoded as the amendment's above
        line.amends = event_key(raw["source"], raw["data"]["target"])
        line.fix = raw["data"].get("data")
    return line


def _check_event(number: int, raw: dict[str, Any], body: bytes) -> None:
    """Refuse what the service would never have stored, and its projection could not
    read: a hash chain proves only that nobody changed the file after it was written.
    What a publisher sent must pass publish's own checks (events/envelope.py); the
    server-set attributes must be what the append path writes."""
    try:
        event = stored_decoder.decode(body)  # the server-set attributes' types among them
    except msgspec.ValidationError as exc:
        raise RestoreRefused(f"line {number}: not a stored event: {exc}") from None
    if not _RECORDED.fullmatch(event.recordedtime):
        raise RestoreRefused(f"line {number}: `recordedtime` is not a UTC time as the "
                             "service writes it (YYYY-MM-DDThh:mm:ss.ffffffZ)")
    if not tokens.NAME.fullmatch(event.recordedby):
        raise RestoreRefused(f"line {number}: `recordedby` is not a principal's name (1-64 "
                             "characters of A-Z a-z 0-9 . _ @ -, as a token's)")
    if "expectedversion" in raw:  # the append path checks it and does not store it
        raise RestoreRefused(f"line {number}: `expectedversion` is never stored")
    sent = {name: value for name, value in raw.items() if name not in SERVER_SET}
    if catalog.is_known(event.type):  # else validate_event names the type
        if not 1 <= event.schemaversion <= catalog.schema_version(event.type):
            raise RestoreRefused(f"line {number}: `schemaversion` {event.schemaversion} is "
                                 f"not one {event.type} was ever written with")
        # Data written under an older schema is judged as the projection reads it.
        sent["data"] = upcast(event.type, event.schemaversion, event.data)
    try:
        validate_event(sent)
    except EventValidationError as exc:
        first = exc.errors[0]
        raise RestoreRefused(f"line {number}: `{first.path}`: {first.message}") from None


_AMENDMENTS = (catalog.CORRECTED, catalog.RETRACTED)


def _check_target(number: int, line: Line, target: tuple[str, str] | None) -> None:
    """What the append path checks of an amendment's target (services.log.append):
    an earlier, ordinary event of the same source and subject, whose type a
    correction's data fits."""
    if target is None:
        raise RestoreRefused(f"line {number}: `data.target`: no event the file holds "
                             "before it has that id from this source")
    target_type, target_subject = target
    if target_subject != line.subject:
        raise RestoreRefused(f"line {number}: `subject`: the target is about "
                             f"{target_subject!r}, not {line.subject!r}")
    if target_type in _AMENDMENTS:
        raise RestoreRefused(f"line {number}: `data.target`: a correction or retraction "
                             "cannot be amended")
    if line.fix is not None:
        try:
            catalog.decode_data(target_type, line.fix, "data.data")
        except EventValidationError as exc:
            first = exc.errors[0]
            raise RestoreRefused(f"line {number}: `{first.path}`: {first.message}") from None


class FileChecker:
    """Checks lines in file order; every break refuses the file."""

    def __init__(self, marks: dict[int, int] | None = None) -> None:
        self.checked = CheckedFile(marks=marks or {})
        self._state: dict[int, _Partition] = {}
        # (source, id) names one event across partitions: its type and subject
        self._seen: dict[str, tuple[str, str]] = {}

    def add(self, number: int, line: Line) -> None:
        checked = self.checked
        if not 0 <= line.partition < MAX_PARTITIONS:
            raise RestoreRefused(f"line {number}: partition {line.partition} is out of range")
        part = self._state.setdefault(line.partition, _Partition())
        if line.sequence != part.expected:
            raise RestoreRefused(f"line {number}: partition {line.partition} sequence "
                                 f"{line.sequence}, expected {part.expected}: the file has a "
                                 "gap, a repeat or lines out of order")
        recomputed = hashlib.sha256(part.prev + line.event).hexdigest()
        if recomputed != line.hash:
            raise RestoreRefused(f"line {number}: partition {line.partition} sequence "
                                 f"{line.sequence}: the hash does not match the event chained "
                                 "from the previous one: the file was altered")
        if line.key in self._seen:
            raise RestoreRefused(f"line {number}: (source, id) appears twice")
        if line.amends:
            _check_target(number, line, self._seen.get(line.amends))
        self._seen[line.key] = (line.type, line.subject)
        known = checked.subjects.setdefault(line.subject, line.partition)
        if known != line.partition:
            raise RestoreRefused(f"line {number}: subject {line.subject!r} is in partitions "
                                 f"{known} and {line.partition}")
        part.expected, part.prev = line.sequence + 1, bytes.fromhex(line.hash)
        if checked.marks.get(line.partition) == line.sequence:
            checked.hashes_at[line.partition] = line.hash
        checked.heads[line.partition] = (line.sequence, line.hash)
        checked.events += 1


def check_lines(
    lines: Iterable[tuple[int, bytes]], marks: dict[int, int] | None = None
) -> CheckedFile:
    """First pass: the whole file, before anything is written."""
    checker = FileChecker(marks)
    for number, text in lines:
        checker.add(number, parse_line(number, text))
    if not checker.checked.events:
        raise RestoreRefused("the file holds no events")
    return checker.checked


def choose_partitions(subjects: dict[str, int], current: int, fixed: bool) -> int:
    """The partition count under which every subject routes where the file has it:
    the log's own when it fits, else (if not fixed by configuration) the smallest."""
    def fits(count: int) -> bool:
        return all(keys.partition_of(s, count) == p for s, p in subjects.items())

    if fits(current):
        return current
    if fixed:
        raise RestoreRefused(f"the file's subjects do not route to their partitions with "
                             f"{current} partitions (TIMELINE_PARTITIONS): restore into a log "
                             "created with the original's count")
    lowest = max(subjects.values()) + 1
    for count in range(lowest, MAX_PARTITIONS + 1):
        if fits(count):
            return count
    raise RestoreRefused("no partition count routes the file's subjects as it has them")


def read_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as handle:
        for number, text in enumerate(handle, start=1):
            if text.strip():
                yield number, text


async def log_is_empty(client: Any, partitions: int) -> bool:
    pipe = client.pipeline(transaction=False)
    pipe.exists(keys.OWNERS)
    for partition in range(partitions):
        pipe.exists(*keys.write_state(partition))
    if any(await pipe.execute()):
        return False
    return not await log_partitions(client)


async def read_model_left(client: Any) -> bool:
    """Whether either read-model namespace holds what a worker applied."""
    pipe = client.pipeline(transaction=False)
    for namespace in NAMESPACES:
        pipe.exists(namespace_key(namespace, "applied"), namespace_key(namespace, "entries"))
    return any(await pipe.execute())


@dataclass
class Restored:
    events: int
    partitions: int
    heads: dict[int, tuple[int, str]]
    resumed: int = 0  # events an earlier, unfinished restore of the file had written


async def restore(
    client: Any, path: Path, current_partitions: int, partitions_fixed: bool,
    on_progress: Callable[[int], object] = lambda n: None,
) -> Restored:
    unfinished = await unfinished_restore(client, current_partitions)
    written = unfinished or {}
    checked = check_lines(read_lines(path), {p: seq for p, (seq, _) in written.items()})
    count = choose_partitions(checked.subjects, current_partitions, partitions_fixed)
    if unfinished is not None:
        _check_resumable(checked, written, count, current_partitions)
    elif not await log_is_empty(client, current_partitions):
        raise RestoreRefused("the log is not empty: restore only writes into an empty log "
                             "(or finishes a restore of the same file that stopped)")
    elif await read_model_left(client):
        # Projections of a log that is gone: workers would take the restored entries
        # for applied ones (the applied positions are past them) and project nothing.
        raise RestoreRefused(
            f"the log is empty but the read model ({BASE}*) still holds projections of "
            "another log: restore into an empty store (a new TIMELINE_DATA_DIR), or "
            "delete those keys first")
    # The mark goes first: whatever is written after it, verify says it may be partial.
    await client.hset(keys.META, mapping={keys.RESTORING: now_rfc3339(), "partitions": count})
    script = scripts.load(client, Path(__file__).with_name("restore.lua"))
    heads = {p: f"{seq}|{head}" for p, (seq, head) in written.items()}
    done = {p: seq for p, (seq, _) in written.items()}
    batches: dict[int, list[Line]] = {}

    async def flush(partition: int) -> None:
        batch = batches.pop(partition, [])
        if not batch:
            return
        entries = [[e.sequence, e.event.decode(), e.hash, e.key, e.ids_value, e.subject]
                   for e in batch]
        # Which partition owns each identity (services/log/claim.lua), before the events:
        # a restore stopped half-way leaves claims for the right partition, never events
        # another partition could claim.
        await client.hset(keys.OWNERS, mapping={e.key: partition for e in batch})
        reply = await script(keys=keys.write_state(partition),
                             args=[heads.get(partition, "0|" + GENESIS.hex()),
                                   _packer.encode(entries)])
        if (reply[0].decode() if isinstance(reply[0], bytes) else reply[0]) != "ok":
            raise RestoreRefused(f"partition {partition} changed during the restore "
                                 "(someone appended): stopped")
        heads[partition] = f"{batch[-1].sequence}|{batch[-1].hash}"
        on_progress(len(batch))

    # Checked again as it is written: should the file change between the passes,
    # what was written is still an unbroken prefix and the rest is refused.
    again = FileChecker()
    for number, text in read_lines(path):
        line = parse_line(number, text)
        again.add(number, line)
        if line.sequence <= done.get(line.partition, 0):
            # Written by the restore that stopped; the file must still lead to its head.
            if line.sequence == done[line.partition] and line.hash != written[line.partition][1]:
                raise RestoreRefused(f"line {number}: the file changed since it was checked: "
                                     f"partition {line.partition} no longer leads to the "
                                     "restored head")
            continue
        batches.setdefault(line.partition, []).append(line)
        if len(batches[line.partition]) >= WRITE_BATCH:
            await flush(line.partition)
    for partition in list(batches):
        await flush(partition)
    await client.hdel(keys.META, keys.RESTORING)
    return Restored(checked.events, count, checked.heads, sum(done.values()))


async def unfinished_restore(
    client: Any, partitions: int
) -> dict[int, tuple[int, str]] | None:
    """Where a restore that did not finish left each partition it wrote (sequence, head
    hash); None when no restore is unfinished."""
    if not await client.hexists(keys.META, keys.RESTORING):
        return None
    pipe = client.pipeline(transaction=False)
    for partition in range(partitions):
        pipe.hmget(keys.head(partition), "sequence", "hash")
    found = {}
    for partition, (seq, head) in enumerate(await pipe.execute()):
        if seq is not None and head is not None:
            found[partition] = (int(seq), head.decode())
    return found


def _check_resumable(checked: CheckedFile, written: dict[int, tuple[int, str]],
                     count: int, current: int) -> None:
    """Each partition the unfinished restore wrote must be this file's, up to its head."""
    if count != current:
        raise RestoreRefused(f"an unfinished restore set {current} partitions, and this "
                             f"file's subjects need {count}: it is another log's export")
    for partition, (seq, head) in sorted(written.items()):
        if checked.hashes_at.get(partition) != head:
            raise RestoreRefused(
                f"an unfinished restore left partition {partition} at sequence {seq}, "
                "where this file's chain does not lead: finish it with the file it began "
                "with, or restore into an empty log")
