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
from typing import Any

import structlog
from faststream import AckPolicy
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.annotations import RedisBatchStreamMessage
from redis.exceptions import ResponseError

from events.stored import StoredEvent, stored_decoder
from projections.fold import fold, target_key
from projections.lease import Leases
from projections.store import ReadModel, encode_change

PROJECTION = "timelines"
CONSUMER = "projector"  # one name for every owner: a new owner inherits the pending list
BATCH = 500
LEASE_TTL_MS = 6000
TICK_SECONDS = 1.0

log = structlog.get_logger("projection")


def log_key(partition: int) -> str:
    return f"timeline:{{p{partition}}}:log"


def decode_entries(entries: list[tuple[bytes, dict[bytes, bytes]]]) -> list[StoredEvent]:
    return [stored_decoder.decode(fields[b"event"]) for _, fields in entries]


class Projector:
    """Applies decoded log entries of one partition to the read model."""

    def __init__(self, read_model: ReadModel) -> None:
        self.read_model = read_model

    async def apply(self, partition: int, events: list[StoredEvent]) -> int:
        """Apply `events` (in log order); return the partition's applied sequence."""
        if not events:
            return 0
        targets = sorted({k for e in events if (k := target_key(e))})
        applied, states = await self.read_model.state(partition, targets)
        changes = []
        for event in events:
            if event.sequence <= applied:
                continue
            key = target_key(event) or event.key
            change = fold(event, states.get(key))
            if change.entry is not None:
                states[change.key] = (change.entry, change.history)
            changes.append(encode_change(event.sequence, change))
        if not changes:
            return applied
        outcome, applied = await self.read_model.apply(partition, changes)
        if outcome == "gap":
            raise GapError(partition, applied, events[0].sequence)
        return applied


class GapError(RuntimeError):
    def __init__(self, partition: int, applied: int, first: int) -> None:
        self.partition, self.applied = partition, applied
        super().__init__(f"partition {partition}: applied {applied}, batch starts at {first}")


class Worker:
    """Owns a fair share of partitions through leases and projects them."""

    def __init__(self, client: Any, url: str, partitions: int, name: str | None = None) -> None:
        self.client = client
        self.partitions = partitions
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.projector = Projector(ReadModel(client))
        self.leases = Leases(client, self.name, PROJECTION, LEASE_TTL_MS)
        faststream_logger = logging.getLogger("faststream.projection")
        faststream_logger.setLevel(logging.WARNING)
        self.broker = RedisBroker(url, logger=faststream_logger)
        self.owned: dict[int, Any] = {}
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        await self.broker.start()
        try:
            while not self._stopping.is_set():
                await self._rebalance()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), TICK_SECONDS)
        finally:
            for partition in list(self.owned):
                await self._give_up(partition)
            await self.leases.leave()
            await self.broker.stop()

    def stop(self) -> None:
        self._stopping.set()

    async def _rebalance(self) -> None:
        alive = await self.leases.heartbeat()
        share = math.ceil(self.partitions / alive)
        for partition in list(self.owned):
            if not await self.leases.renew(partition):
                log.warning("lease lost", partition=partition)
                await self._give_up(partition, release=False)
        for partition in sorted(self.owned, reverse=True)[: max(0, len(self.owned) - share)]:
            await self._give_up(partition)
        for partition in range(self.partitions):
            if len(self.owned) >= share:
                break
            if partition not in self.owned and await self.leases.acquire(partition):
                await self._take(partition)

    async def _take(self, partition: int) -> None:
        stream = log_key(partition)
        with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists already
            await self.client.xgroup_create(stream, PROJECTION, id="0", mkstream=True)
        await self.drain_pending(partition)
        subscriber = self.broker.subscriber(
            stream=StreamSub(stream, group=PROJECTION, consumer=CONSUMER, batch=True,
                             max_records=BATCH, polling_interval=100),
            ack_policy=AckPolicy.MANUAL,
        )
        subscriber(self._handler(partition))
        await subscriber.start()
        self.owned[partition] = subscriber
        log.info("partition taken", partition=partition, worker=self.name)

    async def _give_up(self, partition: int, release: bool = True) -> None:
        subscriber = self.owned.pop(partition, None)
        if subscriber is not None:
            await subscriber.stop()
        if release:
            await self.leases.release(partition)
        log.info("partition released", partition=partition, worker=self.name)

    def _handler(self, partition: int) -> Any:
        async def handle(msg: RedisBatchStreamMessage) -> None:
            raw = msg.raw_message
            entries = list(zip(raw["message_ids"], raw["data"], strict=True))
            await self._apply_then_ack(partition, entries)

        return handle

    async def _apply_then_ack(
        self, partition: int, entries: list[tuple[bytes, dict[bytes, bytes]]]
    ) -> None:
        started = time.perf_counter()
        events = decode_entries(entries)
        try:
            await self.projector.apply(partition, events)
        except GapError as gap:
            await self.catch_up(partition, gap.applied, events[0].sequence - 1)
            await self.projector.apply(partition, events)
        await self.client.xack(log_key(partition), PROJECTION, *[i for i, _ in entries])
        log.info("batch projected", partition=partition, events=len(events),
                 last=events[-1].sequence, seconds=round(time.perf_counter() - started, 4))

    async def catch_up(self, partition: int, applied: int, upto: int) -> None:
        """Apply the log from `applied`+1 through `upto` straight from XRANGE."""
        while applied < upto:
            page = await self.client.xrange(
                log_key(partition), f"{applied + 1}-0", f"{upto}-0", count=BATCH)
            if not page:
                return
            applied = await self.projector.apply(partition, decode_entries(page))

    async def drain_pending(self, partition: int) -> None:
        """Apply and acknowledge what an earlier owner read but never acknowledged."""
        while True:
            reply = await self.client.xreadgroup(
                PROJECTION, CONSUMER, {log_key(partition): "0"}, count=BATCH)
            entries = reply[0][1] if reply else []
            if not entries:
                return
            await self._apply_then_ack(partition, entries)
