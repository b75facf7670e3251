"""Prometheus metrics (GET /metrics).

Two sources, both honest about where they come from:
- counted in this API process: events appended through POST /v1/events, and
  HTTP request durations. Each API replica reports its own; sum them in queries.
- read from Redis at scrape time, so every replica reports the same, whole
  picture: log heads, projection progress and lag, parked entries, and the
  projection batch durations that the worker processes record into Redis
  (projections.live), since a worker serves no HTTP of its own.
"""

from __future__ import annotations

import collections
import datetime as dt
import math
from collections.abc import Iterator
from typing import Any

import msgspec
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from events.catalog import SCHEMA_VERSIONS
from events.codec import UNREADABLE
from events.envelope import NewEvent
from projections.live import BATCH_STATS, BUCKETS
from projections.parking import parked_key
from projections.runner import PROJECTION
from projections.store import ReadModel
from services.log import keys
from services.log.append import AppendResult

# Any publisher may invent vendor types: past this many, one process counts the new ones
# together, so /metrics cannot be grown without bound. Catalog types always have their own.
VENDOR_LABELS = 100
OTHER_VENDOR_TYPES = "x-other"  # no vendor type is named so: theirs hold a dot

HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def parked_stream(partition: int) -> str:
    """The timelines projection's parked entries of a partition (projections.parking);
    a partition with none has no stream, which counts as 0."""
    return parked_key(partition, PROJECTION)


class Metrics:
    """What this process counts. One per app: a registry of its own, so several apps
    in one process (tests) never collide in prometheus_client's global registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.appended = Counter(
            "timeline_events_appended", "Events through POST /v1/events, by type and result",
            ["type", "status"], registry=self.registry)
        self.requests = Histogram(
            "timeline_http_request_duration_seconds",
            "HTTP request durations, by method, route template and status",
            ["method", "route", "status"], buckets=HTTP_BUCKETS, registry=self.registry)
        self._vendor_labels: set[str] = set()

    def count_appended(self, events: list[NewEvent], results: list[AppendResult]) -> None:
        # Only validated events get here, so `type` is a catalog or vendor type.
        # Counted per (type, status) first: a labelled increment costs microseconds.
        pairs = zip(events, results, strict=True)
        counts = collections.Counter((e.type, r.status) for e, r in pairs)
        for (event_type, status), count in counts.items():
            self.appended.labels(self._type_label(event_type), status).inc(count)

    def _type_label(self, event_type: str) -> str:
        if event_type in SCHEMA_VERSIONS or event_type in self._vendor_labels:
            return event_type
        if len(self._vendor_labels) < VENDOR_LABELS:
            self._vendor_labels.add(event_type)
            return event_type
        return OTHER_VENDOR_TYPES

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).observe(seconds)


class _Recorded(msgspec.Struct):
    recordedtime: str


_recorded = msgspec.json.Decoder(_Recorded)


class Snapshot(msgspec.Struct):
    """The Redis side of the metrics, read in a few round trips."""

    heads: dict[int, int]
    applied: dict[int, int]
    lag_seconds: dict[int, float]
    parked: dict[int, int]
    batches: dict[str, str]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def snapshot(client: Any, read_model: ReadModel, partitions: int) -> Snapshot:
    pipe = client.pipeline(transaction=False)
    for partition in range(partitions):
        pipe.hget(keys.head(partition), "sequence")
    for partition in range(partitions):
        pipe.xlen(parked_stream(partition))
    pipe.hgetall(BATCH_STATS)
    replies = await pipe.execute()
    applied = await read_model.applied()
    heads = {p: int(replies[p] or 0) for p in range(partitions)}
    parked = {p: int(replies[partitions + p] or 0) for p in range(partitions)}
    batches = {_text(k): _text(v) for k, v in replies[-1].items()}
    lagging = [p for p in range(partitions) if heads[p] > applied.get(p, 0)]
    lag_seconds = {p: 0.0 for p in range(partitions)}
    if lagging:
        pipe = client.pipeline(transaction=False)
        for p in lagging:
            pipe.xrange(keys.log(p), keys.stream_id(applied.get(p, 0) + 1), "+", count=1)
        now = dt.datetime.now(dt.UTC)
        for p, rows in zip(lagging, await pipe.execute(), strict=True):
            if rows:
                then = _recorded_at(rows[0][1])
                lag_seconds[p] = max(0.0, (now - then).total_seconds()) if then else math.nan
    return Snapshot(heads, applied, lag_seconds, parked, batches)


def _recorded_at(fields: dict[bytes, bytes]) -> dt.datetime | None:
    """When a log entry was recorded; None for one that is not ours (written into the
    log by hand, say): the scrape must still answer, and it is the audit's to name."""
    try:
        recorded = _recorded.decode(fields[b"event"]).recordedtime
        then = dt.datetime.fromisoformat(recorded.replace("Z", "+00:00"))
    except (KeyError, ValueError, *UNREADABLE):
        return None
    return then if then.tzinfo is not None else None


class _SnapshotCollector(Collector):
    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap

    def collect(self) -> Iterator[Metric]:
        snap = self.snap
        families = [
            GaugeMetricFamily("timeline_log_sequence",
                              "Last sequence appended to a partition's log", labels=["partition"]),
            GaugeMetricFamily("timeline_projection_applied_sequence",
                              "Last log sequence the timelines projection applied",
                              labels=["partition"]),
            GaugeMetricFamily("timeline_projection_lag_entries",
                              "Log entries not yet applied by the projection",
                              labels=["partition"]),
            GaugeMetricFamily("timeline_projection_lag_seconds",
                              "Age of the oldest log entry not yet applied (0 when none, "
                              "NaN when it is not one of ours)",
                              labels=["partition"]),
            GaugeMetricFamily("timeline_projection_parked_entries",
                              "Entries the projection parked after repeated failures",
                              labels=["partition"]),
        ]
        for p, head in sorted(snap.heads.items()):
            applied = snap.applied.get(p, 0)
            values = (head, applied, max(0, head - applied), snap.lag_seconds.get(p, 0.0),
                      snap.parked.get(p, 0))
            for family, value in zip(families, values, strict=True):
                family.add_metric([str(p)], value)
        yield from families
        yield from _batch_families(snap.batches)


def _batch_families(stats: dict[str, str]) -> Iterator[Metric]:
    cumulative, buckets = 0.0, []
    for bound in (*(str(b) for b in BUCKETS), "+Inf"):
        cumulative += float(stats.get(f"le:{bound}", 0))
        buckets.append((bound, cumulative))
    yield HistogramMetricFamily(
        "timeline_projection_batch_duration_seconds",
        "Projection batch durations (decode, fold and apply), recorded by every worker",
        buckets=buckets, sum_value=float(stats.get("sum", 0)))
    events = CounterMetricFamily("timeline_projection_batch_events",
                                 "Log entries handled in projection batches")
    events.add_metric([], float(stats.get("events", 0)))
    yield events


def exposition(metrics: Metrics, snap: Snapshot) -> bytes:
    """The Prometheus text format of both sources."""
    scraped = CollectorRegistry()
    scraped.register(_SnapshotCollector(snap))
    return generate_latest(metrics.registry) + generate_latest(scraped)
