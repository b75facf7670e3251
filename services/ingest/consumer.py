"""The ingest stream consumer: `timeline:ingest` → the log (DESIGN 2).

One consumer is active at a time (a lease, as for projection partitions), so
entries are appended in stream order: a correction written after its target
is appended after it. Every owner reads under one consumer name, so a new
owner inherits the pending list of a dead one and finishes it first.

For each batch: decode and validate every entry, append the valid ones through
the same Appender as HTTP (dedupe by source+id, so a redelivered entry is a
harmless duplicate), then in one MULTI/EXEC copy each rejected entry with its
errors to `timeline:ingest:rejected` and acknowledge the whole batch. Nothing
is acknowledged before its append returned, and a rejected entry is never
acknowledged without its copy. A server outage only delays the batch.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from typing import Any

import structlog
from faststream import AckPolicy
from faststream.redis import StreamSub
from faststream.redis.annotations import RedisBatchStreamMessage
from faststream.redis.message import BatchStreamMessage
from faststream.redis.message import RedisBatchStreamMessage as BatchMessage
from redis.asyncio.cluster import RedisCluster

from events.envelope import NewEvent, validate_event
from events.errors import EventValidationError, FieldError
from projections.broker import create_group, make_broker
from projections.outages import worth_waiting
from projections.runner import GRACE_SECONDS, stop_subscriber, until_set
from projections.slow_stop import reported_if_slow
from services.ingest.entries import decode_entry, rejected_copy
from services.log.append import Appender, BatchRejected, ContentionError, now_rfc3339

STREAM = "timeline:ingest"
REJECTED = "timeline:ingest:rejected"
GROUP = "ingest"
CONSUMER = "ingest"  # one name for every owner: a new owner inherits the pending list
LEASE = "timeline:ingest:lease"
RECORDED_BY = "ingest"
BATCH = 500
ATTEMPTS = 3  # of a batch that fails for another reason than an outage
LEASE_TTL_MS = 6000
TICK_SECONDS = 1.0
# An entry delivered this long ago that no handler holds was never handed to us (see
# _left_pending); a batch in hand is handled within milliseconds of its delivery.
STUCK_MS = 10_000


def worth_retrying(exc: BaseException) -> bool:
    """The server unavailable for a while, or the chain head moving under us."""
    return isinstance(exc, ContentionError) or worth_waiting(exc)


Entries = list[tuple[bytes, dict[bytes, bytes]]]
log = structlog.get_logger("ingest")

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class IngestConsumer:
    def __init__(self, client: Any, url: str, appender: Appender, name: str | None = None) -> None:
        self.client = client
        self.appender = appender
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        faststream_logger = logging.getLogger("faststream.ingest")
        faststream_logger.setLevel(logging.WARNING)
        self.broker = make_broker(client, url, logger=faststream_logger,
                                  graceful_timeout=GRACE_SECONDS)
        self.subscriber: Any = None
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._stopping = asyncio.Event()
        self._handling = False  # a delivered batch is in _handle

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        await self.broker.start()
        try:
            while not self._stopping.is_set():
                try:
                    await self._tick()
                except Exception as exc:
                    if not worth_retrying(exc):
                        raise
                    log.warning("ingest: server unavailable, retrying", error=str(exc))
                await until_set(self._stopping, TICK_SECONDS)
        finally:
            async with reported_if_slow(f"ingest consumer {self.name}"):
                await self._give_up(release=True)
                await self.broker.stop()
            log.info("ingest stopped", worker=self.name)

    async def _tick(self) -> None:
        if self.subscriber is not None:
            if not await self._renew(keys=[LEASE], args=[self.name, LEASE_TTL_MS]):
                log.warning("ingest lease lost", worker=self.name)
                await self._give_up(release=False)
            elif await self._left_pending():
                log.warning("ingest: delivered entries were never handled; draining them",
                            worker=self.name)
                await self._give_up(release=False)  # stop reading; the batch in hand ends
                await self._take()  # what is pending, in stream order, then read on
            return
        # Renewing first: a take that failed half-way (an outage) left the lease ours.
        if (await self._renew(keys=[LEASE], args=[self.name, LEASE_TTL_MS])
                or await self.client.set(LEASE, self.name, nx=True, px=LEASE_TTL_MS)):
            await self._take()

    async def _take(self) -> None:
        await create_group(self.client, STREAM, GROUP)
        if not await self.drain_pending():
            return
        subscriber = self.broker.subscriber(
            stream=StreamSub(STREAM, group=GROUP, consumer=CONSUMER, batch=True,
                             max_records=BATCH, polling_interval=100),
            ack_policy=AckPolicy.MANUAL, parser=self._as_read, decoder=_as_parsed,
        )
        subscriber(self._handle)
        await subscriber.start()
        self.subscriber = subscriber
        log.info("ingest stream taken", worker=self.name)

    async def _give_up(self, release: bool) -> None:
        subscriber, self.subscriber = self.subscriber, None
        if subscriber is None:
            return
        await stop_subscriber(subscriber)  # the batch in hand finishes first
        if release:
            try:
                await self.drain_pending()  # what was read but not yet handled
                await self._release(keys=[LEASE], args=[self.name])
            except Exception as exc:
                if not worth_retrying(exc):
                    raise
                log.warning("ingest: could not finish on stop; the next owner will",
                            error=str(exc))
        log.info("ingest stream released", worker=self.name)

    def _as_read(self, raw: BatchStreamMessage) -> BatchMessage:
        """The batch with its entries' fields as read, for decode_entry to judge.

        FastStream's batch parser JSON-encodes every entry's fields as text: a field that
        is not UTF-8 raised there, before our handler, and FastStream never redelivers,
        so the whole batch stayed pending (and unjudged) while the consumer ran."""
        return BatchMessage(raw_message=raw, body=raw["data"], consumer=self.client, group=GROUP)

    async def _handle(self, msg: RedisBatchStreamMessage) -> None:
        raw = msg.raw_message
        self._handling = True
        try:
            await self.process_with_retry(list(zip(raw["message_ids"], raw["data"],
                                                   strict=True)))
        finally:
            self._handling = False

    async def _left_pending(self) -> bool:
        """Entries delivered long ago that no handler holds. FastStream logs a failure
        before or in our handler and never redelivers: without this they would wait,
        unacknowledged, for the next stop or owner (later entries appended before them)."""
        if self._handling:  # its entries may be old: a batch waiting out an outage
            return False
        return bool(await self.client.xpending_range(STREAM, GROUP, "-", "+", 1,
                                                     idle=STUCK_MS))

    async def drain_pending(self) -> bool:
        """Finish what an earlier owner (or this one) read but never acknowledged.

        The lease is renewed after each batch: a long drain (or one that waited out an
        outage) outlives it. False once another owner holds it: two owners would append
        one stream's events out of its order (a correction before its target)."""
        while True:
            reply = await self.client.xreadgroup(GROUP, CONSUMER, {STREAM: "0"}, count=BATCH)
            entries = reply[0][1] if reply else []
            if not entries:
                return True
            await self.process_with_retry(entries)
            if not await self._renew(keys=[LEASE], args=[self.name, LEASE_TTL_MS]):
                log.warning("ingest lease lost while draining", worker=self.name)
                return False

    async def process_with_retry(self, entries: Entries) -> None:
        """Process a batch, waiting out outages (on stop: left pending for the next owner).

        Any other failure is a bug on our side, not bad input (that is rejected
        with reasons): after ATTEMPTS the batch is split, and an entry that still
        fails is moved to the rejected stream with the error, so it neither
        blocks the stream nor crashes every owner in turn.
        """
        if await self._attempt(entries) or len(entries) == 1:
            return
        for entry in entries:
            await self._attempt([entry])

    async def _attempt(self, entries: Entries) -> bool:
        """True when processed; False when it failed ATTEMPTS times (a single entry: rejected)."""
        delay, failures = 0.1, 0
        while True:
            try:
                await self.process(entries)
                return True
            except Exception as exc:
                if worth_retrying(exc):
                    if self._stopping.is_set():
                        raise
                    log.warning("ingest batch delayed", error=str(exc), retry_in=delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    continue
                failures += 1
                log.exception("ingest batch failed", entries=len(entries), attempt=failures)
                if failures < ATTEMPTS:
                    await asyncio.sleep(0.05 * failures)
                    continue
                if len(entries) == 1:
                    await self._settle(entries, {0: [FieldError(
                        "", f"internal error while appending ({type(exc).__name__}: {exc}); "
                            "retry it once the service is fixed")]})
                return False

    async def process(self, entries: Entries) -> None:
        started = time.perf_counter()
        today = now_rfc3339()[:10]
        rejections: dict[int, list[FieldError]] = {}
        valid: list[tuple[int, NewEvent]] = []
        for index, (_, fields) in enumerate(entries):
            decoded, errors = decode_entry(fields)
            if errors:
                rejections[index] = errors
                continue
            try:
                valid.append((index, validate_event(decoded, today)))
            except EventValidationError as exc:
                rejections[index] = list(exc.errors)
        appended = await self._append(valid, rejections)
        await self._settle(entries, rejections)
        log.info("ingest batch", entries=len(entries), appended=appended,
                 rejected=len(rejections), seconds=round(time.perf_counter() - started, 4))

    async def _settle(self, entries: Entries, rejections: dict[int, list[FieldError]]) -> None:
        """Copy the rejected entries with their reasons and acknowledge all, atomically.

        On Redis Cluster the two public stream names hash to different slots, so
        no MULTI can span them: the copies are written first, then the ack. A
        crash in between leaves the batch pending; its next owner appends the
        valid entries again (duplicates, deduped) and copies the rejected ones
        a second time (same original id in the copy): nothing is lost.
        """
        copies = [(REJECTED, rejected_copy(entries[i][0], entries[i][1], rejections[i]))
                  for i in sorted(rejections)]
        idents = [ident for ident, _ in entries]
        if isinstance(self.client, RedisCluster):
            pipe = self.client.pipeline()
            for stream, fields in copies:
                pipe.xadd(stream, fields)
            if copies:
                await pipe.execute()
            await self.client.xack(STREAM, GROUP, *idents)
            return
        pipe = self.client.pipeline(transaction=True)
        for stream, fields in copies:
            pipe.xadd(stream, fields)
        pipe.xack(STREAM, GROUP, *idents)
        await pipe.execute()

    async def _append(
        self, valid: list[tuple[int, NewEvent]], rejections: dict[int, list[FieldError]]
    ) -> int:
        """Append `valid` in order; what the append path refuses joins `rejections`."""
        appended = 0
        while valid:
            try:
                results = await self.appender.append([e for _, e in valid], RECORDED_BY)
            except BatchRejected as exc:  # an amendment whose target is not there
                bad = set()
                for position, _ident, error in exc.errors:
                    rejections.setdefault(valid[position][0], []).append(error)
                    bad.add(position)
                valid = [item for n, item in enumerate(valid) if n not in bad]
                continue
            for (index, _), result in zip(valid, results, strict=True):
                if result.status == "appended":
                    appended += 1
                elif result.status == "conflict":
                    rejections[index] = [_conflict(result.reason)]
            return appended
        return appended


def _as_parsed(msg: BatchMessage) -> Any:
    """The body as the parser left it (FastStream's decoder would read it as JSON)."""
    return msg.body


def _conflict(reason: str | None) -> FieldError:
    if reason == "version":
        return FieldError("expectedversion", "conflict: the subject has another number of "
                                             "events than expectedversion says")
    if reason == "target-missing":
        return FieldError("data.target", "conflict: the target, sent earlier in the same "
                                         "batch, was not appended (target-missing)")
    return FieldError("id", "conflict: this (source, id) was already used for other content "
                            "(id-reused)")
