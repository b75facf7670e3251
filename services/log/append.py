"""The append path: route to partitions, chain, and write each partition's
batch with one script call (DESIGN 2). Validation happens before anything is
written; a batch is either wholly appended per partition or not at all."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import defaultdict
from pathlib import Path
from typing import Any, Literal

import msgspec
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from events import catalog
from events.codec import GENESIS, Stamp, chain_hash
from events.envelope import NewEvent
from events.errors import EventValidationError, FieldError
from events.stored import event_key, position
from services.log import keys
from services.redis import scripts

Status = Literal["appended", "duplicate", "conflict"]

_STATUS: dict[int, tuple[Status, str | None]] = {
    0: ("appended", None),
    1: ("duplicate", None),
    2: ("conflict", "id-reused"),
    3: ("conflict", "version"),
    4: ("conflict", "target-missing"),
}
_MAX_ATTEMPTS = 50
WAIT_TIMEOUT_MS = 2000  # TIMELINE_WRITE_REPLICAS: how long replicas get to confirm
_packer = msgspec.msgpack.Encoder()


class AppendResult(msgspec.Struct, omit_defaults=True):
    source: str
    id: str
    status: Status
    partition: int
    sequence: int | None
    position: str | None
    reason: str | None = None


class BatchRejected(Exception):
    """Validation failed for some events of a request: nothing was written."""

    def __init__(self, errors: list[tuple[int, str | None, FieldError]]) -> None:
        self.errors = errors
        super().__init__(f"{len(errors)} invalid event(s)")


class ContentionError(RuntimeError):
    """The chain head kept moving under us; safe to retry (nothing was written)."""


class NotDurable(ContentionError):
    """Written on the master, but fewer replicas than TIMELINE_WRITE_REPLICAS confirmed
    it in time: not acknowledged. Safe to retry: a retry answers `duplicate`."""


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def position_token(results: list[AppendResult]) -> str:
    """Highest written sequence per partition: what a reader must wait for."""
    highest: dict[int, int] = {}
    for r in results:
        if r.sequence:
            highest[r.partition] = max(highest.get(r.partition, 0), r.sequence)
    return ",".join(position(p, s) for p, s in sorted(highest.items()))


class Appender:
    """Appends validated events. One per process; safe for concurrent use."""

    def __init__(self, client: Any, partitions: int, write_replicas: int = 0) -> None:
        self.client = client
        self.partitions = partitions
        self.write_replicas = write_replicas
        self._script = scripts.load(client, Path(__file__).with_name("append.lua"))
        self._claim = scripts.load(client, Path(__file__).with_name("claim.lua"))
        # On one server (not a cluster) the append script can also claim the identities
        # (claim.lua's map is then in its slot): one round trip per partition, not two.
        self._one_slot = not scripts.is_cluster(client)
        self._heads: dict[int, str] = {}
        self._locks: dict[int, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def append(
        self, events: list[NewEvent], recordedby: str = "anonymous"
    ) -> list[AppendResult]:
        """Append `events` in order; results in the same order."""
        judged = await self._check_amendments(events)
        homes = [keys.partition_of(e.attrs["subject"], self.partitions) for e in events]
        results: list[AppendResult | None] = [None] * len(events)
        by_partition: dict[int, list[int]] = defaultdict(list)
        claim_in_script = self._one_slot and _each_identity_in_one_partition(events, homes)
        if claim_in_script:  # each partition's script claims its own identities
            for index, home in enumerate(homes):
                by_partition[home].append(index)
        else:
            claims = [x for e, p in zip(events, homes, strict=True) for x in (e.key, p)]
            owners = await self._claim(keys=[keys.OWNERS], args=[_packer.encode(claims)])
            for index, (event, home, owner) in enumerate(zip(events, homes, owners, strict=True)):
                if int(owner) == home:
                    by_partition[home].append(index)
                else:  # the identity belongs to an event about another subject
                    results[index] = _result(event, home, 2, 0)

        async def run(partition: int, indexes: list[int]) -> None:
            batch = [events[i] for i in indexes]
            done = await self._append_partition(partition, batch, recordedby, claim_in_script,
                                                judged)
            for i, result in zip(indexes, done, strict=True):
                results[i] = result

        if len(by_partition) == 1:  # one event, or one subject: no task to spawn
            await run(*next(iter(by_partition.items())))
        else:  # every partition's write ends before the call does, even when one fails:
            # an answer (a 503) must not leave writes of its request running behind it
            outcomes = await asyncio.gather(*(run(p, ix) for p, ix in by_partition.items()),
                                            return_exceptions=True)
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome
        return [r for r in results if r is not None]

    async def target_problems(
        self, events: list[NewEvent]
    ) -> list[tuple[int, str | None, FieldError]]:
        """What `append` would refuse in the targets of the corrections and retractions
        among `events` (indexes into `events`), writing nothing: for a request refused for
        other problems, so that its one answer names these as well."""
        try:
            await self._check_amendments(events)
        except BatchRejected as exc:
            return exc.errors
        return []

    async def _check_amendments(self, events: list[NewEvent]) -> dict[str, str]:
        """A correction or retraction must target an earlier, ordinary event of
        the same source and subject; a correction's data must fit the target's type.
        Returns the type each amendment (by its identity) was judged against: the
        append script writes it only if its target still has that type then."""
        amendments = [(i, e) for i, e in enumerate(events) if e.type in _AMENDMENTS]
        if not amendments:
            return {}
        in_batch: dict[tuple[str, str], tuple[int, NewEvent]] = {}
        for index, event in enumerate(events):
            in_batch.setdefault((event.source, event.id), (index, event))
        pipe = self.client.pipeline(transaction=False)
        for _, e in amendments:
            pipe.hget(keys.ids(keys.partition_of(e.subject, self.partitions)),
                      event_key(e.source, e.payload.target))
        stored = await pipe.execute()
        errors: list[tuple[int, str | None, FieldError]] = []
        judged: dict[str, str] = {}
        for (index, event), known in zip(amendments, stored, strict=True):
            target_type, problem = _judge_target(index, event, known, in_batch)
            if problem:
                errors.append((index, event.id, problem))
            judged.setdefault(event.key, target_type)
        if errors:
            raise BatchRejected(errors)
        return judged

    async def _append_partition(
        self, partition: int, batch: list[NewEvent], recordedby: str, claim: bool,
        judged: dict[str, str],
    ) -> list[AppendResult]:
        async with self._locks[partition]:
            return await self._append_locked(partition, batch, recordedby, claim, judged)

    async def _append_locked(
        self, partition: int, batch: list[NewEvent], recordedby: str, claim: bool,
        judged: dict[str, str],
    ) -> list[AppendResult]:
        results: dict[int, AppendResult] = {}
        pending = _first_of_each_key(batch)
        attempts = 0
        while pending:
            if attempts == _MAX_ATTEMPTS:
                raise ContentionError(f"partition {partition}: head kept moving")
            attempts += 1
            head = self._heads.get(partition, "0|" + "00" * 32)
            # Stamped under the lock and again on every attempt, so a partition's
            # recordedtimes never go backwards (as_of depends on it): a retry follows
            # whatever another process appended, stamped before its write went in.
            entries, sequence = _chain(partition, [batch[i] for i in pending], head,
                                       recordedby, now_rfc3339(), judged)
            reply = await self._write(partition, [head, _packer.encode(entries)], claim)
            kind = _text(reply[0])
            if kind == "head":
                self._heads[partition] = _text(reply[1])
            elif kind == "ok":  # the batch went in whole, sequenced from reply[1]
                for seq, i in enumerate(pending, start=int(reply[1])):
                    results[i] = _result(batch[i], partition, 0, seq)
                self._heads[partition] = f"{sequence}|{entries[-1][6]}"
                pending = []
            else:  # "recheck": settle the entries that are not new, retry the rest
                for i, (code, seq) in zip(pending, reply[1], strict=True):
                    if code != 0:
                        results[i] = _result(batch[i], partition, int(code), int(seq))
                pending = [i for i in pending if i not in results]
        if len(results) < len(batch):
            stored = await self._stored_of_reused(partition, batch, results)
            _settle_in_batch_repeats(batch, results, partition, stored)
        return [results[i] for i in range(len(batch))]

    async def _stored_of_reused(
        self, partition: int, batch: list[NewEvent], results: dict[int, AppendResult]
    ) -> dict[str, tuple[int, str]]:
        """The stored sequence and digest of each identity whose first copy in `batch` met
        another event stored in this partition (`id-reused`): a later copy may be that one."""
        reused = [batch[i].key for i, r in results.items() if r.reason == "id-reused"]
        if not reused:
            return {}
        found = await self.client.hmget(keys.ids(partition), reused)
        stored = {}
        for key, record in zip(reused, found, strict=True):
            if record:
                sequence, digest, _ = _text(record).split("|", 2)
                stored[key] = (int(sequence), digest)
        return stored


    async def _write(self, partition: int, args: list[Any], claim: bool) -> Any:
        state = keys.write_state(partition)
        if claim:
            state, args = [*state, keys.OWNERS], [*args, partition]
        if not self.write_replicas:
            return await self._script(keys=state, args=args)
        for _ in range(2):  # a second time after loading the script into a new server
            try:
                return await self._write_and_wait(partition, state, args)
            except NoScriptError:
                await self.client.script_load(self._script.script)
        raise ContentionError(f"partition {partition}: the append script would not load")

    async def _write_and_wait(self, partition: int, state: list[str], args: list[Any]) -> Any:
        """The script, then WAIT, pipelined on one connection to the partition's master:
        WAIT counts the replicas that have this connection's writes."""
        cluster = isinstance(self.client, RedisCluster)
        target: dict[str, Any] = {}
        if cluster:  # the node owning the partition's slot: the script's node
            target["target_nodes"] = self.client.get_node_from_key(state[0])
        pipe = self.client.pipeline(transaction=False)
        # execute_command: redis-py blocks the evalsha helper in cluster pipelines
        pipe.execute_command("EVALSHA", self._script.sha, len(state), *state, *args)
        pipe.incr(keys.waits(partition))
        pipe.execute_command("WAIT", self.write_replicas, WAIT_TIMEOUT_MS, **target)
        try:
            reply, _, confirmed = await pipe.execute()
        except (RedisConnectionError, RedisTimeoutError, AttributeError) as exc:
            if not cluster:
                raise
            # The partition's master is gone (redis-py 8.1 fails a pipeline pinned to a
            # dead node with AttributeError). Reload the slot map so a retry goes to the
            # promoted replica once the cluster has failed over.
            await self.client.nodes_manager.initialize()
            raise NotDurable(f"partition {partition}: its master is unreachable") from exc
        if cluster and self.client.get_node_from_key(state[0]) is not target["target_nodes"]:
            # The slot moved meanwhile (a failover): the script may have been redirected
            # to the new master, and WAIT then counted another node's replicas.
            raise NotDurable(f"partition {partition}: the master changed during the write")
        if int(confirmed) < self.write_replicas:
            raise NotDurable(f"partition {partition}: {confirmed} of {self.write_replicas} "
                             f"replica(s) confirmed the write within {WAIT_TIMEOUT_MS} ms")
        return reply


_AMENDMENTS = (catalog.CORRECTED, catalog.RETRACTED)


def _judge_target(
    index: int, event: NewEvent, known: bytes | None,
    in_batch: dict[tuple[str, str], tuple[int, NewEvent]],
) -> tuple[str, FieldError | None]:
    """The type of an amendment's target and what is wrong with the target, judged from
    the stored log or, failing that, from the first event of the same request with the
    target's identity."""
    target_id = event.payload.target
    earlier = in_batch.get((event.source, target_id))
    if known is not None:
        _, _, target_type, target_subject = known.decode().split("|", 3)
    elif earlier is not None and earlier[0] < index:
        target_type, target_subject = earlier[1].type, earlier[1].subject
    else:
        return "", FieldError(
            "data.target", f"no event {target_id!r} from this source about {event.subject!r}")
    if target_subject != event.subject:
        return target_type, FieldError(
            "subject", f"must equal the target's subject {target_subject!r}")
    if target_type in _AMENDMENTS:
        return target_type, FieldError(
            "data.target", "a correction or retraction cannot be amended")
    data = getattr(event.payload, "data", None)
    if data is not None:
        try:
            catalog.decode_data(target_type, data, "data.data")
        except EventValidationError as exc:
            return target_type, exc.errors[0]
    return target_type, None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _each_identity_in_one_partition(events: list[NewEvent], homes: list[int]) -> bool:
    """No (source, id) of the request goes to two partitions. When one does, the claims
    must be made in request order across partitions (the first copy wins), which only
    the separate claim call does; partitions' scripts run in no particular order."""
    seen: dict[str, int] = {}
    for event, home in zip(events, homes, strict=True):
        if seen.setdefault(event.key, home) != home:
            return False
    return True


def _first_of_each_key(batch: list[NewEvent]) -> list[int]:
    seen: set[str] = set()
    firsts = []
    for i, event in enumerate(batch):
        key = event.key
        if key not in seen:
            seen.add(key)
            firsts.append(i)
    return firsts


def _settle_in_batch_repeats(
    batch: list[NewEvent], results: dict[int, AppendResult], partition: int,
    stored: dict[str, tuple[int, str]],
) -> None:
    """A (source, id) repeated within one request answers like a re-send: a duplicate
    of what is stored under it (written by this request or before), else a conflict."""
    first: dict[str, int] = {}
    for i, event in enumerate(batch):
        key = event.key
        if key not in first:
            first[key] = i
            continue
        original, outcome = batch[first[key]], results[first[key]]
        if key in stored:  # the first copy met another event stored under this identity
            sequence, digest = stored[key]
            results[i] = _result(event, partition, 1 if digest == event.digest else 2, sequence)
        elif outcome.status == "conflict":  # the first copy was not written: neither is this
            results[i] = msgspec.structs.replace(outcome)
        else:
            code = 1 if original.digest == event.digest else 2
            results[i] = _result(event, partition, code, outcome.sequence or 0)


def _result(event: NewEvent, partition: int, code: int, seq: int) -> AppendResult:
    status, reason = _STATUS[code]
    written = code in (0, 1) and seq > 0
    return AppendResult(
        source=event.attrs["source"], id=event.attrs["id"], status=status, partition=partition,
        sequence=seq if written else None,
        position=position(partition, seq) if written else None, reason=reason,
    )


def _chain(
    partition: int, batch: list[NewEvent], head: str, recordedby: str, recorded: str,
    judged: dict[str, str],
) -> tuple[list[list[Any]], int]:
    """Stored form of each event, sequenced and hash-chained from `head`; and the
    sequence of the last one."""
    seq_text, _, hash_hex = head.partition("|")
    sequence, prev = int(seq_text), bytes.fromhex(hash_hex) if hash_hex else GENESIS
    stamp = Stamp(recorded, recordedby, partition)
    entries = []
    for event in batch:
        sequence += 1
        attrs = event.attrs
        body = stamp.stored(attrs, event.content, sequence,
                            catalog.schema_version(attrs["type"]))
        prev = chain_hash(prev, body)
        expected = -1 if event.expected_version is None else event.expected_version
        target = event.amendment.target if event.amendment is not None else None
        entries.append([event.key, event.digest, attrs["type"], attrs["subject"], expected,
                        body.decode(), prev.hex(),
                        event_key(attrs["source"], target) if target else "",
                        judged.get(event.key, "")])
    return entries, sequence
