"""The Prometheus exposition (pure: a snapshot made by hand) and the Grafana
dashboard that reads it."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from events.envelope import validate_event
from projections.live import bucket_of
from services.log.append import AppendResult
from services.metrics import OTHER_VENDOR_TYPES, VENDOR_LABELS, Metrics, Snapshot, exposition

DASHBOARD = Path(__file__).parent.parent.parent / "docs" / "grafana-dashboard.json"


def sample_text() -> str:
    metrics = Metrics()
    event = validate_event({"specversion": "1.0", "id": "e1", "source": "urn:t", "type":
                            "x-test.noted", "subject": "a", "occurred": "2024", "data": {}})
    metrics.count_appended([event], [AppendResult("urn:t", "e1", "appended", 0, 1, "0-1")])
    metrics.observe_request("GET", "/v1/timelines/all", 200, 0.004)
    snap = Snapshot(heads={0: 10, 1: 4}, applied={0: 7}, lag_seconds={0: 2.5, 1: 9.0},
                    parked={0: 0, 1: 2},
                    batches={"count": "3", "events": "12", "sum": "0.07", "le:0.01": "2",
                             "le:0.05": "1"})
    return exposition(metrics, snap).decode()


def samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(sample_text()) for s in f.samples}


def test_lag_is_heads_minus_applied_per_partition() -> None:
    found = samples()
    assert found[("timeline_projection_lag_entries", (("partition", "0"),))] == 3
    assert found[("timeline_projection_lag_entries", (("partition", "1"),))] == 4
    assert found[("timeline_projection_lag_seconds", (("partition", "1"),))] == 9.0
    assert found[("timeline_projection_parked_entries", (("partition", "1"),))] == 2


def test_batch_histogram_is_cumulative() -> None:
    found = samples()
    bucket = "timeline_projection_batch_duration_seconds_bucket"
    assert found[(bucket, (("le", "0.005"),))] == 0
    assert found[(bucket, (("le", "0.01"),))] == 2
    assert found[(bucket, (("le", "0.05"),))] == 3
    assert found[(bucket, (("le", "+Inf"),))] == 3
    assert found[("timeline_projection_batch_duration_seconds_count", ())] == 3
    assert found[("timeline_projection_batch_events_total", ())] == 12


def test_bucket_of_picks_the_first_bound_that_fits() -> None:
    assert bucket_of(0.0) == "0.005"
    assert bucket_of(0.01) == "0.01"
    assert bucket_of(0.011) == "0.025"
    assert bucket_of(99.0) == "+Inf"


def test_appended_counter_is_labelled_by_type_and_status() -> None:
    found = samples()
    key = ("timeline_events_appended_total", (("status", "appended"), ("type", "x-test.noted")))
    assert found[key] == 1


def test_vendor_types_past_the_cap_are_counted_together() -> None:
    metrics = Metrics()
    types = [f"x-v{i}.noted" for i in range(VENDOR_LABELS + 5)] + ["mou.signed"]
    events = [validate_event({"specversion": "1.0", "id": f"e{i}", "source": "urn:t",
                              "type": t, "subject": "a", "occurred": "2024",
                              "data": {"parties": [{"id": "a"}, {"id": "b"}]}})
              for i, t in enumerate(types)]
    results = [AppendResult("urn:t", e.id, "appended", 0, i, f"0-{i}")
               for i, e in enumerate(events)]
    metrics.count_appended(events, results)
    metrics.count_appended(events[:1], results[:1])  # a type seen before keeps its label
    counted = {s.labels["type"]: s.value
               for f in text_string_to_metric_families(exposition(metrics, Snapshot(
                   heads={}, applied={}, lag_seconds={}, parked={}, batches={})).decode())
               for s in f.samples if s.name == "timeline_events_appended_total"}
    assert len(counted) == VENDOR_LABELS + 2
    assert counted[OTHER_VENDOR_TYPES] == 5
    assert counted["x-v0.noted"] == 2 and counted["mou.signed"] == 1


def test_the_dashboard_only_uses_metrics_the_service_exports() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exported = {name for name, _ in samples()}
    used = {name for panel in dashboard["panels"] for target in panel["targets"]
            for name in re.findall(r"timeline_[a-z_]+", target["expr"])}
    assert used and used <= exported, used - exported
