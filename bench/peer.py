"""The peer: the `eventsourcing` library on the same events.

Each subject is an aggregate; every event is a `Recorded` domain event of its
subject's aggregate carrying the whole published event. Saves go 100 events at
a time (the aggregates those events touched). Aggregates stay in a dict rather
than being re-read from the repository, which favours the peer.

Its projection runner reads the application's notification log into an
in-memory view that keeps, like our read model, an ordered timeline per
entity the event names plus the event itself.
"""

from __future__ import annotations

import bisect
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, ClassVar
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.application import Application
from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import ApplicationRecorder, Tracking
from eventsourcing.popo import POPOTrackingRecorder
from eventsourcing.projection import Projection, ProjectionRunner
from eventsourcing.utils import get_topic

SAVE_EVERY = 100


class Subject(Aggregate):
    def __init__(self, name: str) -> None:
        self.name = name
        self.events = 0

    @classmethod
    def create_id(cls, name: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"/subjects/{name}")

    @event("Recorded")
    def record(self, payload: dict[str, Any]) -> None:
        self.events += 1


class Subjects(Application[UUID]):
    # Given a recorder already holding the events, the projection runner's own
    # application instance reads them (a POPO recorder is private to one instance).
    prefilled: ClassVar[ApplicationRecorder | None] = None

    def construct_recorder(self) -> ApplicationRecorder:
        return type(self).prefilled or super().construct_recorder()


def write(events: list[dict[str, Any]], env: dict[str, str] | None = None) -> tuple[float, Any]:
    """Seconds to record `events`, saving every 100; and the application."""
    app = Subjects(env=env)
    aggregates: dict[str, Subject] = {}
    started = time.perf_counter()
    for start in range(0, len(events), SAVE_EVERY):
        touched: dict[str, Subject] = {}
        for raw in events[start:start + SAVE_EVERY]:
            name = raw["subject"]
            aggregate = aggregates.get(name)
            if aggregate is None:
                aggregate = aggregates[name] = Subject(name)
            aggregate.record(raw)
            touched[name] = aggregate
        app.save(*touched.values())
    return time.perf_counter() - started, app


def involved(payload: dict[str, Any]) -> set[str]:
    """The subject and every entity the data names (as our fold finds them)."""
    found = {payload["subject"]}
    for value in payload["data"].values():
        if isinstance(value, dict) and "id" in value:
            found.add(value["id"])
        elif isinstance(value, list):
            found.update(v["id"] for v in value if isinstance(v, dict) and "id" in v)
    return found


class TimelineView(POPOTrackingRecorder):
    """Per-entity timelines ordered by (occurred, source, id), plus the events."""

    target = 0

    def __init__(self) -> None:
        super().__init__()
        self.timelines: dict[str, list[tuple[str, str, str]]] = {}
        self.entries: dict[tuple[str, str], dict[str, Any]] = {}
        self.done = threading.Event()
        self.done_at = 0.0

    def add(self, payload: dict[str, Any], tracking: Tracking) -> None:
        with self._database_lock:
            key = (payload["source"], payload["id"])
            self.entries[key] = payload
            order = (payload["occurred"], *key)
            for entity in involved(payload):
                bisect.insort(self.timelines.setdefault(entity, []), order)
            self.insert_tracking(tracking)
        if tracking.notification_id >= type(self).target:
            self.done_at = time.perf_counter()
            self.done.set()


class TimelineProjection(Projection[TimelineView]):
    name = "timelines"
    topics = (get_topic(Subject.Recorded),)  # type: ignore[attr-defined]

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.add(domain_event.payload, tracking)


def project(app: Subjects, count: int) -> float:
    """Seconds for the projection runner to bring the view up to `count` events."""
    Subjects.prefilled = app.recorder
    TimelineView.target = count
    try:
        started = time.perf_counter()
        with ProjectionRunner(application_class=Subjects, projection_class=TimelineProjection,
                              view_class=TimelineView, env={}) as runner:
            view = runner.projection.view
            if not view.done.wait(timeout=600):
                raise TimeoutError("the peer's projection did not finish")
            runner.run_forever(timeout=0)  # re-raises a projection error, if any
            return view.done_at - started
    finally:
        Subjects.prefilled = None


def single_saves(app: Subjects, events: list[dict[str, Any]]) -> list[float]:
    """Milliseconds per save of one event: the peer's single publish."""
    aggregate = Subject("single-publisher")
    app.save(aggregate)  # created before timing: each timed save holds exactly one event
    latencies = []
    for raw in events:
        aggregate.record(raw)
        started = time.perf_counter()
        app.save(aggregate)
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def run_once(events: list[dict[str, Any]], sqlite_events: list[dict[str, Any]],
             singles: int) -> dict[str, Any]:
    """One run of every peer figure: rates in events/s, single-save latencies in ms."""
    seconds, app = write(events)
    rates: dict[str, Any] = {"popo_write": len(events) / seconds}
    rates["projection"] = len(events) / project(app, len(events))
    app.close()
    with tempfile.TemporaryDirectory(prefix="bench-peer-") as tmp:
        env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite",
               "SQLITE_DBNAME": str(Path(tmp) / "peer.db")}
        seconds, app = write(sqlite_events, env)
        rates["sqlite_write"] = len(sqlite_events) / seconds
        rates["single_saves"] = single_saves(app, events[:singles])
        app.close()
    return rates
