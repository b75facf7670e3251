"""The projection worker: FastStream batch subscribers on each owned
partition's log, applying changes to the read model, acknowledging after.

Crash anywhere and nothing is lost or doubled: entries are acknowledged only
after the apply script has recorded their sequence, and the script skips any
sequence it has already applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
import structlog
from faststream import AckPolicy
from faststream.redis import StreamSub
from faststream.redis.annotations import RedisBatchStreamMessage
from faststream.redis.message import FAKE_CONSUMER
from faststream.redis.message import RedisBatchStreamMessage as BatchMessage

from events.stored import StoredEvent, stored_decoder
from projections.broker import create_group, make_broker
from projections.deferred import HeldMembers
from projections.fold import Change, State, fold, target_key
from projections.lease import Held, Leases
from projections.live import LiveFeed
from projections.outages import worth_waiting
from projections.parking import PARK_ATTEMPTS, park
from projections.slow_stop import reported_if_slow
from projections.store import ReadModel
from projections.writes import (
    Fresh,
    encode_batch,
    encode_change,
    fresh_entries,
    merge_fresh,
    vacated,
)

PROJECTION = "timelines"
CONSUMER = "projector"  # one name for every owner: a new owner inherits the pending list
BATCH = 500
LEASE_TTL_MS = 6000
TICK_SECONDS = 1.0
GRACE_SECONDS = 10.0  # how long a stop waits for the batch in hand
STALE_ATTEMPTS = 5

log = structlog.get_logger("projection")
T = TypeVar("T")


def log_key(partition: int) -> str:
    return f"timeline:{{p{partition}}}:log"


Entries = list[tuple[bytes, dict[bytes, bytes]]]


def decode_entries(entries: Entries) -> list[StoredEvent]:
    return [stored_decoder.decode(fields[b"event"]) for _, fields in entries]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _sequence(stream_id: bytes | str) -> int:
    """Log entry ids are `<sequence>-0`."""
    return int(_text(stream_id).split("-")[0])


async def raw_batch(message: Any) -> BatchMessage:
    """The batch as the server returned it, without FastStream's own body parsing.

    Its default parser JSON-decodes every entry and re-encodes the whole batch as
    the message body (a third of the worker's time in a profile); the handler
    reads the raw entries instead, and acknowledges them itself.
    """
    return BatchMessage(raw_message=message, body=b"", consumer=FAKE_CONSUMER,
                                   group=PROJECTION)


async def until_set(event: asyncio.Event, seconds: float) -> None:
    """Wait for `event`, at most `seconds`: a loop's tick that a stop cuts short.

    Not `asyncio.wait_for`: on Python 3.11 it can swallow a cancel of the caller."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()


async def stop_subscriber(subscriber: Any) -> None:
    """Stop a FastStream subscriber and wait until its reader task has really ended.

    `stop()` lets the batch in hand finish (graceful_timeout), then only asks
    the reader task to cancel; a read already sent (XREADGROUP ... BLOCK) can
    still deliver entries after `stop()` returned. Waiting for the task means
    whatever it was delivered is pending by the time the caller drains.
    """
    tasks = [t for t in getattr(subscriber, "tasks", []) if not t.done()]  # stop() clears it
    await subscriber.stop()
    if tasks:
        await asyncio.wait(tasks, timeout=GRACE_SECONDS)


class Projected(msgspec.Struct):
    """What applying a batch did: the partition's applied sequence, the entries this
    call changed, and the keys of events an earlier call had already applied (a
    redelivery: their entries are whatever the store holds)."""

    applied: int
    fresh: dict[str, Fresh]
    earlier: list[str]


class Progress(msgspec.Struct, frozen=True):
    """Where a partition's projection stands: the applied sequence, the last sequence
    delivered to the consumer group, and how many delivered entries await their ack."""

    applied: int
    delivered: int
    pending: int


class Projector:
    """Applies decoded log entries of one partition to the read model.

    With `held` (a rebuild's), new entries' members are left to it, written
    sorted later; the caller flushes it when done."""

    def __init__(self, read_model: ReadModel, held: HeldMembers | None = None) -> None:
        self.read_model = read_model
        self.held = held

    async def apply(self, partition: int, events: list[StoredEvent]) -> int:
        """Apply `events` (in log order); return the partition's applied sequence."""
        return (await self.project(partition, events)).applied

    async def project(self, partition: int, events: list[StoredEvent]) -> Projected:
        """Apply `events` (in log order) and say what changed."""
        for _ in range(STALE_ATTEMPTS):
            projected = await self._project_once(partition, events)
            if projected is not None:
                return projected
        raise RuntimeError(f"partition {partition}: another projector keeps applying "
                           "the same entries (two owners?)")

    async def _project_once(self, partition: int, events: list[StoredEvent]) -> Projected | None:
        if not events:
            return Projected(0, {}, [])
        targets = sorted({k for e in events if (k := target_key(e))})
        if not targets:
            projected = await self._project_new(partition, events)
            if projected is not None:
                return projected
        applied, states = await self.read_model.state(partition, targets)
        earlier = [target_key(e) or e.key for e in events if e.sequence <= applied]
        records: list[list[Any]] = []
        hole: int | None = None
        for event in events:
            if event.sequence <= applied:
                continue
            if event.sequence != applied + len(records) + 1:
                hole = event.sequence  # the script checks only where a batch starts
                break
            change = self.fold(event, states.get(target_key(event) or event.key))
            if change.entry is not None:
                states[change.key] = (change.entry, change.history)
            records.append(encode_change(event.sequence, change))
        if records:
            outcome, applied = await self._apply_records(partition, records)
            if outcome == "gap":
                raise GapError(partition, applied, records[0][0])
            if outcome in ("stale", "done"):  # applied by another since our read: read again
                return None
        if hole is not None:
            raise GapError(partition, applied, hole)
        return Projected(applied, fresh_entries(records), earlier)

    async def _project_new(self, partition: int, events: list[StoredEvent]) -> Projected | None:
        """The usual batch, in one round trip: no amendments, so the fold needs no state
        and the script alone decides by sequence. None: take the path that reads state
        (a hole, a redelivery overlapping what is applied, a gap, a promote's fence)."""
        first = events[0].sequence
        if any(e.sequence != first + i for i, e in enumerate(events)):
            return None
        records = [encode_change(e.sequence, self.fold(e, None)) for e in events]
        outcome, applied = await self._apply_records(partition, records, stateless=True)
        if outcome == "ok":
            return Projected(applied, fresh_entries(records), [])
        if outcome == "done":  # a redelivery: all applied before, publish what is stored
            return Projected(applied, {}, [e.key for e in events])
        return None

    async def _apply_records(self, partition: int, records: list[list[Any]],
                             stateless: bool = False) -> tuple[str, int]:
        if self.held is None:
            return await self.read_model.apply(partition, encode_batch(records), stateless)
        members: dict[str, list[str]] = {}
        payload = encode_batch(records, members)
        removed = vacated(records)
        await self.held.write_now(removed)  # so that the removals find them
        outcome, applied = await self.read_model.apply(partition, payload, stateless)
        # "done": applied before, by this projector's own call whose reply was lost (the
        # client retried it): only a rebuild holds members, and it alone writes its copy.
        if outcome in ("ok", "done"):
            self.held.add(members, removed)
            await self.held.flush_if_full()
        return outcome, applied

    def fold(self, event: StoredEvent, state: State | None) -> Change:
        """What one event does (a seam: tests put a failing fold here)."""
        return fold(event, state)

    async def skip(self, partition: int, sequence: int) -> int:
        """Record `sequence` as applied without changing any entry: a parked entry's turn."""
        change = Change(key="", entry=None, previous=None, history=[])
        outcome, applied = await self.read_model.apply(
            partition, encode_batch([encode_change(sequence, change)]))
        if outcome == "gap":
            raise GapError(partition, applied, sequence)
        return applied


class GapError(RuntimeError):
    def __init__(self, partition: int, applied: int, first: int) -> None:
        self.partition, self.applied = partition, applied
        super().__init__(f"partition {partition}: applied {applied}, batch starts at {first}")


class Worker:
    """Owns a fair share of partitions through leases and projects them."""

    def __init__(self, client: Any, url: str, partitions: int, name: str | None = None,
                 projector: Projector | None = None) -> None:
        self.client = client
        self.partitions = partitions
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.projector = projector or Projector(ReadModel(client))
        self.live = LiveFeed(client, self.projector.read_model)
        self.leases = Leases(client, self.name, PROJECTION, LEASE_TTL_MS)
        self.held = Held(self.leases, TICK_SECONDS)
        faststream_logger = logging.getLogger("faststream.projection")
        faststream_logger.setLevel(logging.WARNING)
        self.broker = make_broker(client, url, logger=faststream_logger,
                                  graceful_timeout=GRACE_SECONDS)
        self.owned: dict[int, Any] = {}
        self._stopping = asyncio.Event()
        self._in_hand: dict[int, asyncio.Lock] = {}  # held while a partition's batch is handled
        self._behind: dict[int, Progress] = {}  # the last tick's progress of partitions behind

    async def run(self) -> None:
        await self.broker.start()
        keeper = asyncio.create_task(self.held.keep())
        try:
            while not self._stopping.is_set():
                if keeper.done():
                    keeper.result()  # it ended on an error: the worker ends with it
                try:
                    await self._rebalance()
                    await self._recover_stranded()
                except Exception as exc:  # the leases expire meanwhile; correctness holds
                    if not worth_waiting(exc):
                        raise
                    log.warning("server unavailable, retrying", error=str(exc))
                await until_set(self._stopping, TICK_SECONDS)
        finally:
            async with reported_if_slow(f"projection worker {self.name}"):
                await self._finish(keeper)
            log.info("worker stopped", worker=self.name)

    async def _finish(self, keeper: asyncio.Task[None]) -> None:
        """Graceful stop: every partition's batch in hand is finished and acknowledged,
        then its lease released, so a successor starts at once. All at once: a
        subscriber still running would keep taking new batches."""
        try:
            await self._give_up_all()
        finally:  # renewing until every give-up has drained, and never after
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await keeper
        try:
            await self._release_unowned()
            await self.leases.leave()
        except Exception as exc:  # the leases expire instead
            if not worth_waiting(exc):
                raise
        await self.broker.stop()

    def stop(self) -> None:
        self._stopping.set()

    async def _give_up_all(self) -> None:
        owned = list(self.owned)
        outcomes = await asyncio.gather(*(self._give_up(p) for p in owned),
                                        return_exceptions=True)
        for partition, outcome in zip(owned, outcomes, strict=True):
            if isinstance(outcome, Exception) and worth_waiting(outcome):
                log.warning("could not finish a partition on stop; its lease will expire",
                            partition=partition, error=str(outcome))
            elif isinstance(outcome, BaseException):
                raise outcome

    async def _rebalance(self) -> None:
        alive = await self.leases.heartbeat()
        share = math.ceil(self.partitions / alive)
        for partition in [p for p in self.owned if p not in self.held.partitions]:
            log.warning("lease lost", partition=partition)
            await self._give_up(partition, release=False)
        for partition in sorted(self.owned, reverse=True)[: max(0, len(self.owned) - share)]:
            await self._give_up(partition)
        for partition in range(self.partitions):
            if len(self.owned) >= share or self._stopping.is_set():
                break
            if partition in self.owned:
                continue
            # Held but not owned: a take that failed, retried under the lease it kept.
            if partition not in self.held.partitions:
                if not await self.leases.acquire(partition):
                    continue
                self.held.take(partition)
            await self._take(partition)
        await self._release_unowned()

    async def _release_unowned(self) -> None:
        """A lease kept for a failed take that this worker's share no longer wants."""
        for partition in self.held.partitions - set(self.owned):
            self.held.drop(partition)
            await self.leases.release(partition)

    async def _take(self, partition: int) -> None:
        stream = log_key(partition)
        await create_group(self.client, stream, PROJECTION)
        await self.drain_pending(partition)
        subscriber = self.broker.subscriber(
            stream=StreamSub(stream, group=PROJECTION, consumer=CONSUMER, batch=True,
                             max_records=BATCH, polling_interval=100),
            ack_policy=AckPolicy.MANUAL, parser=raw_batch,
        )
        subscriber(self._handler(partition))
        await subscriber.start()
        self.owned[partition] = subscriber
        log.info("partition taken", partition=partition, worker=self.name)

    async def _give_up(self, partition: int, release: bool = True) -> None:
        subscriber = self.owned.pop(partition, None)
        if subscriber is not None:
            await stop_subscriber(subscriber)
        if release:
            # A read cut short by the stop leaves entries pending: finish them
            # while the lease is still ours.
            await self.drain_pending(partition)
            self.held.drop(partition)
            await self.leases.release(partition)
        log.info("partition released", partition=partition, worker=self.name)

    def _handler(self, partition: int) -> Any:
        async def handle(msg: RedisBatchStreamMessage) -> None:
            raw = msg.raw_message
            entries = list(zip(raw["message_ids"], raw["data"], strict=True))
            async with self._lock(partition):
                await self._apply_then_ack(partition, entries)

        return handle

    async def _apply_then_ack(
        self, partition: int, entries: list[tuple[bytes, dict[bytes, bytes]]]
    ) -> None:
        started = time.perf_counter()
        projected = await self.apply_entries(partition, entries)
        await self._feed(projected, len(entries), started,
                         (log_key(partition), PROJECTION, [i for i, _ in entries]))
        log.info("batch projected", partition=partition, events=len(entries),
                 last=_sequence(entries[-1][0]), seconds=round(time.perf_counter() - started, 4))

    async def apply_entries(self, partition: int, entries: Entries) -> Projected:
        """Apply log entries in order; say what changed.

        A server outage is waited out (until a stop: then the batch stays
        pending for the next owner). Any other failure is retried; when a batch
        keeps failing, its entries are applied one by one and the one that
        still fails after PARK_ATTEMPTS is parked, so the partition flows on.
        """
        failures = 0
        while True:
            try:
                return await self._apply(partition, decode_entries(entries))
            except GapError:  # the log itself has a hole: `audit verify`, not parking
                raise
            except Exception as exc:
                if worth_waiting(exc):
                    await self._wait_out(exc)
                    continue
                failures += 1
                if failures >= PARK_ATTEMPTS:
                    break
                log.warning("batch failed, retrying", partition=partition, error=repr(exc))
                await asyncio.sleep(0.05 * failures)
        merged = Projected(0, {}, [])
        for entry in entries:
            projected = await self._apply_or_park(partition, entry)
            merged.applied = projected.applied
            merge_fresh(merged.fresh, projected.fresh)
            merged.earlier += projected.earlier
        return merged

    async def _apply_or_park(
        self, partition: int, entry: tuple[bytes, dict[bytes, bytes]]
    ) -> Projected:
        failures, error = 0, None
        while failures < PARK_ATTEMPTS:
            try:
                return await self._apply(partition, decode_entries([entry]))
            except GapError:
                raise
            except Exception as exc:
                if worth_waiting(exc):
                    await self._wait_out(exc)
                    continue
                failures, error = failures + 1, exc
                await asyncio.sleep(0.05 * failures)
        assert error is not None
        sequence = _sequence(entry[0])

        async def park_and_skip() -> int:  # both idempotent: a retry after a lost reply is safe
            await park(self.client, PROJECTION, partition, sequence, entry[1], error, failures)
            return await self.projector.skip(partition, sequence)

        applied = await self._waiting_out(park_and_skip)
        log.error("entry parked", partition=partition, sequence=sequence, error=repr(error),
                  hint="timeline audit parked; fix, then timeline audit unpark")
        return Projected(applied, {}, [])

    async def _feed(self, projected: Projected, events: int, started: float,
                    acknowledge: tuple[str, str, list[bytes]] | None = None) -> None:
        """Publish applied entries to the live feed (and acknowledge them). The apply
        is done, so a server refusing writes for a while is waited out here: failing
        would leave the batch pending, off the feed until the partition's next owner."""
        await self._waiting_out(lambda: self.live.publish(
            projected.fresh, projected.earlier, events, time.perf_counter() - started,
            acknowledge))

    async def _waiting_out(self, call: Callable[[], Awaitable[T]]) -> T:
        """`call()`, again after each server outage or refusal, until it answers."""
        while True:
            try:
                return await call()
            except Exception as exc:
                if not worth_waiting(exc):
                    raise
                await self._wait_out(exc)

    async def _wait_out(self, exc: BaseException) -> None:
        if self._stopping.is_set():
            raise exc
        log.warning("server unavailable, retrying", error=str(exc))
        await asyncio.sleep(TICK_SECONDS)

    async def _apply(self, partition: int, events: list[StoredEvent]) -> Projected:
        try:
            return await self.projector.project(partition, events)
        except GapError as gap:
            await self.catch_up(partition, gap.applied, events[0].sequence - 1)
            return await self.projector.project(partition, events)

    async def catch_up(self, partition: int, applied: int, upto: int) -> None:
        """Apply the log from `applied`+1 through `upto` straight from XRANGE, and
        publish each page to the live feed (no acknowledgement: this consumer never
        read these entries, another did and left them)."""
        while applied < upto:
            page = await self.client.xrange(
                log_key(partition), f"{applied + 1}-0", f"{upto}-0", count=BATCH)
            if not page:
                return
            started = time.perf_counter()
            projected = await self.apply_entries(partition, page)
            await self._feed(projected, len(page), started)
            applied = _sequence(page[-1][0])

    def _lock(self, partition: int) -> asyncio.Lock:
        return self._in_hand.setdefault(partition, asyncio.Lock())

    async def _recover_stranded(self) -> None:
        """Apply what was delivered to an owned partition but is neither applied nor in hand.

        FastStream never delivers a batch twice, so a batch whose handler failed
        (an error not worth waiting out), a read served to a subscriber being
        stopped, or an apply a failover lost after its acknowledgement would
        otherwise wait for the partition's next event (its gap) or next owner.
        A partition counts as stranded when it made no progress between two ticks
        with no batch in hand: a batch being handled holds its lock throughout.
        """
        if not self.owned:
            return
        applied = await self.projector.read_model.applied()
        behind: dict[int, Progress] = {}
        for partition in list(self.owned):
            if self._lock(partition).locked():
                continue
            progress = await self._progress(partition, applied.get(partition, 0))
            if progress.applied < progress.delivered or progress.pending:
                behind[partition] = progress
        stranded = [p for p, now in behind.items() if self._behind.get(p) == now]
        self._behind = behind
        for partition in stranded:
            async with self._lock(partition):
                log.warning("stranded entries recovered", partition=partition,
                            **msgspec.structs.asdict(behind[partition]))
                await self.drain_pending(partition)
                done = (await self.projector.read_model.applied()).get(partition, 0)
                await self.catch_up(partition, done, behind[partition].delivered)
            self._behind.pop(partition, None)

    async def _progress(self, partition: int, applied: int) -> Progress:
        for group in await self.client.xinfo_groups(log_key(partition)):
            if _text(group["name"]) == PROJECTION:
                return Progress(applied, _sequence(group["last-delivered-id"]),
                                int(group["pending"]))
        return Progress(applied, 0, 0)

    async def drain_pending(self, partition: int) -> None:
        """Apply and acknowledge what an earlier owner read but never acknowledged."""
        while True:
            reply = await self.client.xreadgroup(
                PROJECTION, CONSUMER, {log_key(partition): "0"}, count=BATCH)
            entries = reply[0][1] if reply else []
            if not entries:
                return
            await self._apply_then_ack(partition, entries)
