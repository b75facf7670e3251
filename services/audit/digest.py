"""Signed digests of the log: per partition the last sequence and its chain hash.

A digest saved today lets anyone check later that the log still extends it:
the entry at each digest sequence must still carry the digest's hash. That is
what catches a truncated tail or a log rewritten consistently from scratch,
which a chain check alone cannot see. The signature is HMAC-SHA256 under
`TIMELINE_DIGEST_KEY` over the canonical JSON of `issued_at` and `partitions`;
with no key the digest is unsigned (`signature: null`).

Pure except `heads` and `build`, which read the chain heads and confirm each in its log.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from typing import Annotated, Any

import msgspec
from redis.exceptions import ResponseError

from services.audit.chain import ZERO_HEAD, Problem
from services.log import keys
from services.log.reader import BadHead, parse_head

_canonical = msgspec.json.Encoder(order="sorted")
Hex64 = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
Sequence = Annotated[int, msgspec.Meta(ge=0)]
Partition = Annotated[int, msgspec.Meta(ge=0, le=1023)]


class DigestPartition(msgspec.Struct, forbid_unknown_fields=True):
    partition: Partition
    sequence: Sequence
    head: Hex64


class Digest(msgspec.Struct, forbid_unknown_fields=True):
    partitions: list[DigestPartition]
    issued_at: str
    signature: Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")] | None = None


class BadDigest(ValueError):
    """The digest is malformed or its signature does not check: it is refused."""

    def __init__(self, path: str, message: str) -> None:
        self.path, self.message = path, message
        super().__init__(f"{path}: {message}")


def signing_bytes(digest: Digest) -> bytes:
    body = {"issued_at": digest.issued_at, "partitions": msgspec.to_builtins(digest.partitions)}
    return _canonical.encode(body)


def signature_of(digest: Digest, key: str) -> str:
    return hmac.new(key.encode(), signing_bytes(digest), hashlib.sha256).hexdigest()


def issue(heads: dict[int, tuple[int, str]], key: str | None, now: dt.datetime) -> Digest:
    parts = [DigestPartition(p, seq, head) for p, (seq, head) in sorted(heads.items())]
    issued = now.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    digest = Digest(parts, issued)
    if key:
        digest.signature = signature_of(digest, key)
    return digest


def parse(raw: Any) -> Digest:
    """A digest from decoded JSON, every malformed field named."""
    try:
        digest = msgspec.convert(raw, Digest)
    except msgspec.ValidationError as exc:
        raise BadDigest(*_located(str(exc))) from None
    seen = [p.partition for p in digest.partitions]
    if len(set(seen)) != len(seen):
        raise BadDigest("partitions", "a partition is listed twice")
    return digest


def _located(text: str) -> tuple[str, str]:
    """(field path, message) of a msgspec validation error."""
    message, sep, where = text.rpartition(" - at `")
    path = where.rstrip("`").removeprefix("$").lstrip(".") if sep else ""
    message = message if sep else text
    named = re.search(r"(?:missing required|unknown) field `([^`]+)`", message)
    if named:
        path = f"{path}.{named.group(1)}" if path else named.group(1)
    return path or "digest", message


def check_signature(digest: Digest, key: str | None) -> str:
    """"valid" or "unsigned"; BadDigest when the signature cannot be trusted."""
    if digest.signature is None:
        if key:
            raise BadDigest("signature", "this server signs digests "
                            "(TIMELINE_DIGEST_KEY is set): an unsigned digest is refused")
        return "unsigned"
    if not key:
        raise BadDigest("signature", "the digest is signed but this server has no "
                        "TIMELINE_DIGEST_KEY to check it with: refused")
    if not hmac.compare_digest(digest.signature, signature_of(digest, key)):
        raise BadDigest("signature", "the signature does not match the digest: it was "
                        "altered or signed with another key; refused")
    return "valid"


def wanted(digest: Digest) -> dict[int, frozenset[int]]:
    """The sequence whose stored hash each partition must report."""
    return {p.partition: frozenset({p.sequence}) for p in digest.partitions if p.sequence}


def extension_problems(
    digest: Digest, partitions: int, last_sequences: dict[int, int],
    hashes_at: dict[int, dict[int, str]],
) -> list[Problem]:
    """How the current log fails to extend `digest` (empty: it does)."""
    problems = []
    listed = {p.partition for p in digest.partitions}
    if listed != set(range(partitions)):
        problems.append(Problem(kind="partition-count", message=f"the digest lists "
                                f"partitions {sorted(listed)}, the log has {partitions}"))
    for part in digest.partitions:
        if part.partition >= partitions:
            continue
        if part.sequence == 0:
            if part.head != ZERO_HEAD:
                problems.append(Problem(kind="digest-mismatch", partition=part.partition,
                                        sequence=0, message="sequence 0 has the zero head"))
            continue
        found = hashes_at.get(part.partition, {}).get(part.sequence)
        last = last_sequences.get(part.partition, 0)
        if found is None and last < part.sequence:
            problems.append(Problem(
                kind="truncated", partition=part.partition, sequence=part.sequence,
                message=f"the digest saw sequence {part.sequence}; the log now ends at {last}"))
        elif found is None:
            problems.append(Problem(
                kind="digest-mismatch", partition=part.partition, sequence=part.sequence,
                message=f"the entry at sequence {part.sequence} is missing or not in our layout"))
        elif found != part.head:
            problems.append(Problem(
                kind="digest-mismatch", partition=part.partition, sequence=part.sequence,
                message=f"the entry at sequence {part.sequence} has hash {found[:16]}…, the "
                f"digest recorded {part.head[:16]}…: the log was rewritten"))
    return problems


async def heads(client: Any, partitions: int) -> dict[int, tuple[int, str]]:
    """(sequence, hash) of every partition's chain head, each confirmed in its log: a
    digest must sign only what the log holds. BadHead, naming the partition, for a head
    that is not one, is missing beside entries, or is not the log's entry at its sequence."""
    pipe = client.pipeline(transaction=False)
    for partition in range(partitions):
        # The log's first entry before the head, in one pipeline: an append writes both at
        # once, so an entry with no head beside it means the head was deleted.
        pipe.xrange(keys.log(partition), "-", "+", count=1)
        pipe.hmget(keys.head(partition), "sequence", "hash")
    replies = await pipe.execute(raise_on_error=False)
    found = {}
    for partition in range(partitions):
        first, head = replies[2 * partition:2 * partition + 2]
        seq, value = parse_head(partition, head)
        if seq is None and value is not None:
            raise BadHead(partition, "the stored head has a hash but no sequence")
        if seq is None and _entries(partition, first):
            raise BadHead(partition, "the stored head is missing, but the log holds entries")
        found[partition] = (seq or 0, value or ZERO_HEAD)
    confirm = [(p, seq, value) for p, (seq, value) in found.items() if seq]
    pipe = client.pipeline(transaction=False)
    for partition, seq, _ in confirm:
        pipe.xrange(keys.log(partition), f"{seq}-0", f"{seq}-0")
    held = await pipe.execute(raise_on_error=False) if confirm else []
    for (partition, seq, value), reply in zip(confirm, held, strict=True):
        if [fields.get(b"hash") for _, fields in _entries(partition, reply)] != [value.encode()]:
            raise BadHead(partition, f"the stored head says sequence {seq} hash {value[:16]}…, "
                          "which the log does not hold there")
    return found


def _entries(partition: int, reply: Any) -> list[Any]:
    """An XRANGE reply of a pipeline; BadHead when the log's key is not a stream."""
    if isinstance(reply, ResponseError):
        if not str(reply).startswith("WRONGTYPE"):
            raise reply
        raise BadHead(partition, "the log's key holds another type than a stream")
    return list(reply)


class RestoreUnfinished(RuntimeError):
    """A restore stopped half-way: the log may hold only part of its file."""


async def build(client: Any, partitions: int, key: str | None) -> Digest:
    """The signed heads; RestoreUnfinished while a restore has not finished, as its
    heads are those of a part of a file, which a digest would vouch for as a log."""
    from services.audit.verify import restore_mark  # here: verify imports this module

    unfinished = await restore_mark(client)
    if unfinished:
        raise RestoreUnfinished(unfinished[0].message)
    return issue(await heads(client, partitions), key, dt.datetime.now(dt.UTC))
