"""GET /metrics: scraped from a real API process and parsed as Prometheus text."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import httpx
import redis
from prometheus_client.parser import text_string_to_metric_families

from services.log import keys
from services.metrics import parked_stream
from tests import processes
from tests.factory import ref

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
SUBJECT = "org-metrics"
PARTITION = keys.partition_of(SUBJECT, 8)


def scrape(http: httpx.Client) -> Samples:
    response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.text)
            for s in family.samples}


def scrape_until(http: httpx.Client, name: str, expected: float,
                 within: float = 10.0) -> Samples:
    deadline = time.monotonic() + within
    while True:
        samples = scrape(http)
        if samples.get((name, frozenset())) == expected or time.monotonic() > deadline:
            return samples
        time.sleep(0.05)


def value(samples: Samples, name: str, **labels: str) -> float:
    """A series' value; a series not exported fails (a missing one is not a zero)."""
    key = (name, frozenset(labels.items()))
    assert key in samples, f"no series {name}{labels}"
    return samples[key]


def event(ident: str) -> dict[str, Any]:
    return {"specversion": "1.0", "id": ident, "source": "urn:test:metrics",
            "type": "mou.signed", "subject": SUBJECT, "occurred": "2024-01",
            "data": {"parties": [ref(SUBJECT), ref("org-other")]}}


def test_metrics_follow_publishing_and_projection(
    http: httpx.Client, redis_url: str, sync_redis: redis.Redis, tmp_path: Path
) -> None:
    before = scrape(http)
    batch = [event(f"m-{i}") for i in range(3)]
    assert http.post("/v1/events", json=batch).status_code == 200
    assert http.post("/v1/events", json=batch[:1]).status_code == 200  # a duplicate
    time.sleep(0.3)

    lagging = scrape(http)
    def appended(samples: Samples, status: str) -> float:
        key = ("timeline_events_appended_total",
               frozenset({"type": "mou.signed", "status": status}.items()))
        return samples.get(key, 0.0)  # a counter appears at its first increment

    assert appended(lagging, "appended") - appended(before, "appended") == 3
    assert appended(lagging, "duplicate") - appended(before, "duplicate") == 1
    p = str(PARTITION)
    assert value(lagging, "timeline_log_sequence", partition=p) == 3
    assert value(lagging, "timeline_projection_lag_entries", partition=p) == 3
    assert value(lagging, "timeline_projection_lag_seconds", partition=p) >= 0.3
    others = [q for q in range(8) if q != PARTITION]
    assert all(value(lagging, "timeline_projection_lag_entries", partition=str(q)) == 0
               for q in others)
    assert value(lagging, "timeline_projection_batch_duration_seconds_count") == 0

    worker = processes.start(["worker"], processes.env_for(redis_url), tmp_path / "worker.log")
    try:
        response = http.get("/v1/timelines/entity/org-metrics",
                            params={"min_position": f"{PARTITION}-3"})
        assert response.status_code == 200
        sync_redis.xadd(parked_stream(5), {"entry": "1-0", "error": "test"})
        sync_redis.xadd(parked_stream(5), {"entry": "2-0", "error": "test"})
        # The batch statistics are written after the apply (on a cluster, after the
        # live feed's call too).
        caught_up = scrape_until(http, "timeline_projection_batch_events_total", 3)
    finally:
        assert processes.stop(worker) == 0

    assert value(caught_up, "timeline_projection_applied_sequence", partition=p) == 3
    assert value(caught_up, "timeline_projection_lag_entries", partition=p) == 0
    assert value(caught_up, "timeline_projection_lag_seconds", partition=p) == 0
    count = value(caught_up, "timeline_projection_batch_duration_seconds_count")
    assert count >= 1
    assert value(caught_up, "timeline_projection_batch_duration_seconds_bucket", le="+Inf") == count
    assert value(caught_up, "timeline_projection_batch_duration_seconds_sum") > 0
    assert value(caught_up, "timeline_projection_batch_events_total") == 3
    assert value(caught_up, "timeline_projection_parked_entries", partition="5") == 2
    assert value(caught_up, "timeline_projection_parked_entries", partition=p) == 0
    route = {"method": "GET", "route": "/v1/timelines/entity/{ident}", "status": "200"}
    assert value(caught_up, "timeline_http_request_duration_seconds_count", **route) >= 1
    raw_path = ("route", "/v1/timelines/entity/org-metrics")
    assert not any(raw_path in labels for _, labels in caught_up)


def test_a_foreign_entry_next_in_a_log_leaves_the_scrape_answering(
    http: httpx.Client, sync_redis: redis.Redis,
) -> None:
    """An entry without `event` (written by hand) next to apply made /metrics a 500, so
    every gauge vanished just when lag and parking are worth watching."""
    q = (PARTITION + 1) % 8
    sync_redis.xadd(keys.log(q), {"junk": "x"}, id=keys.stream_id(1))
    sync_redis.hset(keys.head(q), "sequence", 1)
    samples = scrape(http)
    assert value(samples, "timeline_projection_lag_entries", partition=str(q)) == 1
    assert math.isnan(value(samples, "timeline_projection_lag_seconds", partition=str(q)))
    assert value(samples, "timeline_log_sequence", partition=str(PARTITION)) == 0
