"""Each group of figures, measured run by run into `Figure`s."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any
from urllib.parse import quote

from bench import audit, lag, layout, limits, ours, pages, peer, publish_http
from bench import events as gen
from bench.plan import (
    HTTP_BATCH,
    HTTP_CLIENTS,
    LAG_BATCH,
    LAG_RATE,
    MAX_RATE_CLIENTS,
    PAGE_CLIENTS,
    SINGLE_RATE,
    Plan,
)
from bench.stack import PARTITIONS, Stack
from bench.stats import Figure, NotMeasured, percentile
from services import bootstrap, config
from services.log import keys
from services.queries import projection_lag
from services.redis import loop

Log = Callable[[str], None]
Figures = dict[str, "Figure | NotMeasured"]


def declare(figures: Figures) -> None:
    """Every figure, in table order."""
    rows = [
        ("limit.xadd_redis_py", "raw XADD, redis-py pipeline", "limit", "events/s", True),
        ("limit.xadd_resp", "raw XADD, bare RESP writer", "limit", "events/s", True),
        ("limit.xadd", "raw XADD (better of the two)", "limit", "events/s", True),
        ("limit.consume_redis_py", "raw XREADGROUP+decode, redis-py", "limit", "events/s",
         True),
        ("limit.consume_resp", "raw XREADGROUP+decode, bare RESP", "limit", "events/s", True),
        ("limit.consume", "raw consume (better of the two)", "limit", "events/s", True),
        ("limit.stream_memory", "bare stream memory", "limit", "bytes/event", False),
        ("limit.layout_write", "read-model layout writes, no logic", "limit", "events/s",
         True),
        ("limit.layout_memory", "bare stream + read-model layout memory", "limit",
         "bytes/event", False),
        ("limit.single_rtt_p50", "one XADD round trip p50", "limit", "ms", False),
        ("limit.single_rtt_p99", "one XADD round trip p99", "limit", "ms", False),
        ("limit.page_p50", "XRANGE 100 events p50, 8 clients", "limit", "ms", False),
        ("limit.page_p99", "XRANGE 100 events p99, 8 clients", "limit", "ms", False),
        ("peer.popo_write", "eventsourcing POPO, 100/save", "peer", "events/s", True),
        ("peer.sqlite_write", "eventsourcing SQLite, 100/save", "peer", "events/s", True),
        ("peer.projection", "eventsourcing projection runner", "peer", "events/s", True),
        ("peer.single_save_p50", "eventsourcing SQLite, 1-event save p50", "peer", "ms", False),
        ("peer.single_save_p99", "eventsourcing SQLite, 1-event save p99", "peer", "ms", False),
        ("ours.append", "in-process append, 500/batch", "ours", "events/s", True),
        ("ours.http_batch", "HTTP batch publish, 500/req, 4 clients", "ours", "events/s",
         True),
        ("ours.http_single_p50", "HTTP single publish p50 @300/s", "ours", "ms", False),
        ("ours.http_single_p99", "HTTP single publish p99 @300/s", "ours", "ms", False),
        ("ours.http_single_max_rate", "HTTP single publish, max sustained", "ours", "req/s",
         True),
        ("ours.projection", "projection, one worker", "ours", "events/s", True),
        ("ours.lag_p50", "end-to-end lag p50 @5,000/s", "ours", "ms", False),
        ("ours.lag_p99", "end-to-end lag p99 @5,000/s", "ours", "ms", False),
        ("ours.page_p50", "entity page (100) p50, 8 clients", "ours", "ms", False),
        ("ours.page_p99", "entity page (100) p99, 8 clients", "ours", "ms", False),
        ("ours.page_as_of_p50", "entity page (100) with as_of p50", "ours", "ms", False),
        ("ours.page_as_of_p99", "entity page (100) with as_of p99", "ours", "ms", False),
        ("ours.replay", "replay (rebuild + compare)", "ours", "events/s", True),
        ("ours.verify", "verify (whole log)", "ours", "events/s", True),
        ("ours.memory", "Redis memory, log + read model", "ours", "bytes/event", False),
    ]
    for key, label, group, unit, higher in rows:
        figures[key] = Figure(key, label, group, unit, higher)  # type: ignore[arg-type]


def _fig(figures: Figures, key: str) -> Figure:
    figure = figures[key]
    assert isinstance(figure, Figure)
    return figure


def measure_limits(stack: Stack, plan: Plan, events: list[dict[str, Any]], figures: Figures,
                   log: Log) -> None:
    payloads = gen.stored_payloads(events[:plan.limit_events], PARTITIONS)
    single_runs: list[list[float]] = []
    for run in range(plan.runs):
        stack.flush()
        rates = limits.run_once(stack.url, payloads)
        for name in ("xadd_redis_py", "xadd_resp", "consume_redis_py", "consume_resp"):
            _fig(figures, f"limit.{name}").runs.append(rates[name])
        _fig(figures, "limit.xadd").runs.append(max(rates["xadd_redis_py"], rates["xadd_resp"]))
        _fig(figures, "limit.consume").runs.append(
            max(rates["consume_redis_py"], rates["consume_resp"]))
        _fig(figures, "limit.stream_memory").runs.append(rates["stream_bytes_per_event"])
        log(f"limits run {run + 1}: " + ", ".join(f"{k} {v:,.0f}" for k, v in rates.items()))
        single_runs.append(loop.run(limits.single_round_trips(
            stack.url, payloads[:plan.single_samples])))
    _latency_pair(figures, "limit.single_rtt", single_runs, {"method": "bare RESP, unpipelined"})
    for key in ("limit.xadd_redis_py", "limit.xadd_resp", "limit.xadd", "limit.consume_redis_py",
                "limit.consume_resp", "limit.consume", "limit.stream_memory"):
        _fig(figures, key).detail["events"] = len(payloads)
    _measure_layout(stack, plan, events, figures, log)


def _measure_layout(stack: Stack, plan: Plan, events: list[dict[str, Any]], figures: Figures,
                    log: Log) -> None:
    """The layout's limit over the whole SCALE, the store size the projection is
    measured at (a sorted set's insertions slow as it grows). Runs after the
    stream limits: each run starts from an empty server, and the last one's
    layout is dropped and the AOF rewritten, so the groups after it start from
    an empty base as they did before this limit existed."""
    started = time.perf_counter()
    prepared = layout.batches(gen.stored_payloads(events, PARTITIONS))
    log(f"layout limit: {len(events):,} entries folded and packed in "
        f"{time.perf_counter() - started:.1f} s")
    stream = _fig(figures, "limit.stream_memory")
    writes, memory = _fig(figures, "limit.layout_write"), _fig(figures, "limit.layout_memory")
    for run in range(plan.runs):
        stack.flush()
        before = stack.used_memory()
        with stack.rewrites() as seen:
            rate = len(events) / loop.run(layout.write(stack.url, prepared))
        layout_bytes = (stack.used_memory() - before) / len(events)
        writes.runs.append(rate)
        writes.detail.setdefault("aof_rewrites", []).append(asdict(seen))
        memory.runs.append(stream.runs[run] + layout_bytes)
        memory.detail.setdefault("layout_only", []).append(round(layout_bytes))
        log(f"layout limit run {run + 1}: {rate:,.0f} events/s, "
            f"{layout_bytes:,.0f} bytes/event beside the log{seen.note()}")
    stack.flush()
    stack.redis.bgrewriteaof()
    stack.settle()
    writes.detail.update(events=len(events), batch=layout.BATCH)
    memory.detail.update(
        events=len(events),
        source="bare stream bytes per event (limit.stream_memory: the same run's first "
               f"{plan.limit_events:,} events) + INFO used_memory delta of the layout / events")


def measure_peer(plan: Plan, events: list[dict[str, Any]], figures: Figures, log: Log) -> None:
    sample, sqlite_sample = events[:plan.peer_events], events[:plan.peer_sqlite_events]
    single_runs = []
    for run in range(plan.runs):
        rates = peer.run_once(sample, sqlite_sample, plan.single_samples)
        for name in ("popo_write", "sqlite_write", "projection"):
            _fig(figures, f"peer.{name}").runs.append(rates[name])
        single_runs.append(rates["single_saves"])
        log(f"peer run {run + 1}: " + ", ".join(
            f"{k} {rates[k]:,.0f}" for k in ("popo_write", "sqlite_write", "projection")))
    _latency_pair(figures, "peer.single_save", single_runs, {"recorder": "SQLite"})
    _fig(figures, "peer.popo_write").detail["events"] = len(sample)
    _fig(figures, "peer.projection").detail["events"] = len(sample)
    _fig(figures, "peer.sqlite_write").detail["events"] = len(sqlite_sample)


def measure_store(stack: Stack, plan: Plan, events: list[dict[str, Any]], figures: Figures,
                  log: Log) -> None:
    """Append SCALE events (each run into an empty server), then project them
    (each run from an empty read model). Leaves the full store for the queries."""
    log_bytes: list[float] = []
    baseline = 0
    for run in range(plan.runs):
        stack.flush()
        baseline = stack.used_memory()
        before = dt.datetime.now(dt.UTC)
        seconds = loop.run(ours.append(stack.url, events))
        # half the store was recorded by then: the `as_of` the page queries ask for
        stack.as_of = (before + (dt.datetime.now(dt.UTC) - before) / 2).isoformat(
            timespec="microseconds").replace("+00:00", "Z")
        log_bytes.append((stack.used_memory() - baseline) / len(events))
        _fig(figures, "ours.append").runs.append(len(events) / seconds)
        log(f"append run {run + 1}: {len(events) / seconds:,.0f} events/s")
    projection = _fig(figures, "ours.projection")
    startups = []
    for run in range(plan.runs):
        stack.reset_read_model()
        result = ours.project(stack)
        projection.runs.append(result["rate"])
        startups.append(round(result["startup_s"], 2))
        total = (stack.used_memory() - baseline) / len(events)
        _fig(figures, "ours.memory").runs.append(total)
        log(f"projection run {run + 1}: {result['rate']:,.0f} events/s "
            f"(start-up {result['startup_s']:.1f} s); memory {total:,.0f} bytes/event")
    _fig(figures, "ours.append").detail.update(events=len(events), batch=500)
    projection.detail.update(events=len(events), startup_seconds=startups,
                             note="rate from the first applied batch to the log heads")
    memory = _fig(figures, "ours.memory")
    memory.detail.update(events=len(events), log_only=round(sorted(log_bytes)[len(log_bytes) // 2]),
                         source="INFO memory used_memory delta / events")
    _amend(stack, events, log)


def _amend(stack: Stack, events: list[dict[str, Any]], log: Log) -> None:
    """Correct and retract some of the hot entity's events after the store is measured,
    so that the queries, the audit and `as_of` meet superseded versions (recorded after
    `stack.as_of`: as of then, pages show the versions they replaced)."""
    fixes = gen.amendments(events)
    loop.run(ours.append(stack.url, fixes, stored=len(events)))
    ours.project(stack)
    stack.amended = len(fixes)
    log(f"amended {len(fixes)} of the hot entity's {len(events) // 100} events "
        "(corrected or retracted) and projected them")


def _latency_pair(figures: Figures, prefix: str, runs: list[list[float]],
                  extra: dict[str, Any]) -> None:
    for pct, suffix in ((50, "p50"), (99, "p99")):
        figure = _fig(figures, f"{prefix}_{suffix}")
        figure.runs.extend(percentile(samples, pct) for samples in runs)
        figure.detail.update(samples=[len(s) for s in runs], **extra)


def measure_pages(stack: Stack, base: str, plan: Plan, figures: Figures, log: Log) -> None:
    """Entity pages over HTTP (and with `as_of`, where queries take it), and
    the floor: bare XRANGE reads of 100 stored events by as many clients."""
    floor: list[list[float]] = []
    live: list[list[float]] = []
    past: list[list[float]] = []
    rewrites_live: list[dict[str, Any]] = []
    rewrites_past: list[dict[str, Any]] = []
    as_of = audit.has_as_of()
    stream = f"timeline:{{p{keys.partition_of(gen.HOT, PARTITIONS)}}}:log"
    stack.settle()  # the audit's last replay dropped a whole copy of the read model
    for run in range(plan.runs):
        floor.append(loop.run(limits.read_pages(stack.url, stream, plan.page_requests,
                                                   PAGE_CLIENTS)))
        for samples, extra in ((live, ""), (past, f"&as_of={quote(stack.as_of)}")):
            if extra and not as_of:
                continue
            with stack.rewrites() as seen:
                result = loop.run(pages.page_clients(base, gen.HOT, plan.page_requests,
                                                        PAGE_CLIENTS, extra=extra))
            if result["errors"]:
                raise RuntimeError(f"timeline pages{extra} failed: "
                                   f"{len(result['errors'])} errors, e.g. {result['errors'][:2]}")
            samples.append(result["latencies"])
            (rewrites_past if extra else rewrites_live).append(asdict(seen))
            log(f"pages{' as_of' if extra else ''} run {run + 1}: "
                f"p50 {percentile(result['latencies'], 50):.2f} ms, "
                f"p99 {percentile(result['latencies'], 99):.2f} ms, "
                f"{result['rate']:,.0f} req/s{seen.note()}")
    _latency_pair(figures, "limit.page", floor, {"clients": PAGE_CLIENTS, "count": 100})
    detail = {"clients": PAGE_CLIENTS, "limit": 100, "entity_events": plan.scale // 100,
              "amended": stack.amended}
    _latency_pair(figures, "ours.page", live, {**detail, "aof_rewrites": rewrites_live})
    if as_of:
        _latency_pair(figures, "ours.page_as_of", past,
                      {**detail, "as_of": stack.as_of, "aof_rewrites": rewrites_past})
    else:
        for key in ("ours.page_as_of_p50", "ours.page_as_of_p99"):
            figures[key] = NotMeasured(key, _fig(figures, key).label,
                                       "timeline queries take no as_of parameter yet")


def measure_audit(stack: Stack, plan: Plan, figures: Figures, log: Log) -> None:
    """Verify and replay over the full store, with the read model caught up."""
    checks = (("ours.verify", ("services.audit.verify",)),
              ("ours.replay", ("services.audit.replay",)))
    for key, modules in checks:
        reason = audit.missing(*modules)
        if reason:
            figures[key] = NotMeasured(key, _fig(figures, key).label, reason)
            continue
        figure = _fig(figures, key)
        for run in range(plan.runs):
            if key == "ours.verify":
                result = loop.run(audit.verify_rate(stack.url))
            else:
                stack.settle()  # the last replay's dropped copy, freed in the background
                result = loop.run(audit.replay_rate(stack.url, PARTITIONS))
                figure.detail.setdefault("identical", []).append(result["identical"])
            figure.runs.append(result["rate"])
            figure.detail["events"] = result["events"]
            log(f"{key} run {run + 1}: {result['rate']:,.0f} events/s")


async def wait_projected(url: str, within: float = 600) -> None:
    settings = config.load({"TIMELINE_REDIS_URL": url, "TIMELINE_PARTITIONS": str(PARTITIONS)})
    services = await bootstrap.connect(settings, url)
    try:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if not any((await projection_lag(services.log, services.read_model)).values()):
                return
            await asyncio.sleep(0.05)
        raise TimeoutError("the worker did not catch up")
    finally:
        await services.client.aclose()


def measure_lag(stack: Stack, base: str, plan: Plan, figures: Figures, log: Log) -> None:
    batches_per_second = LAG_RATE / LAG_BATCH
    count = int(plan.lag_seconds * LAG_RATE)
    runs: list[list[float]] = []
    accepted: list[int] = []
    rewrites: list[dict[str, Any]] = []
    # Only the rewrites the runs' own writes set off: not one left by an earlier group.
    stack.settle()
    with stack.worker():
        loop.run(wait_projected(stack.url))
        for run in range(plan.runs):
            fresh = gen.generate(count, seed=100 + run, run=f"lag{run}-")
            bodies = [gen.body(b) for b in gen.batches(fresh, LAG_BATCH)]
            with stack.rewrites() as seen:
                result = loop.run(lag.lag(base, stack.url, bodies, batches_per_second))
            rewrites.append(asdict(seen))
            if result["errors"]:
                raise RuntimeError(f"publishing for the lag test failed: {len(result['errors'])} "
                                   f"errors, e.g. {result['errors'][:2]}")
            runs.append(result["lags"])
            # requests go out on schedule, but if the API answers slower than they
            # arrive, fewer events per second are accepted than were offered: say so
            accepted.append(round(count / result["seconds"]))
            log(f"lag run {run + 1}: p50 {percentile(result['lags'], 50):.1f} ms, "
                f"p99 {percentile(result['lags'], 99):.1f} ms; {accepted[-1]:,} events/s "
                f"acknowledged of {LAG_RATE:,} offered{seen.note()}")
    _latency_pair(figures, "ours.lag", runs, {"offered_events_per_s": LAG_RATE,
                                             "acknowledged_events_per_s": accepted,
                                             "events_per_request": LAG_BATCH,
                                             "seconds": plan.lag_seconds,
                                             "poll_interval_ms": lag.POLL_SECONDS * 1000,
                                             "aof_rewrites": rewrites})


def measure_publish(stack: Stack, base: str, plan: Plan, events: list[dict[str, Any]],
                    figures: Figures, log: Log) -> None:
    sample = events[:plan.http_batch_events]
    bodies = [gen.body(b) for b in gen.batches(sample, HTTP_BATCH)]
    batch = _fig(figures, "ours.http_batch")
    for run in range(plan.runs):
        stack.flush()
        seconds = loop.run(publish_http.batch_publish(base, bodies, len(sample), HTTP_CLIENTS))
        batch.runs.append(len(sample) / seconds)
        log(f"HTTP batch run {run + 1}: {len(sample) / seconds:,.0f} events/s")
    batch.detail.update(events=len(sample), per_request=HTTP_BATCH, clients=HTTP_CLIENTS)

    latency_runs, late, errors, samples = [], [], 0, []
    achieved: list[int] = []
    rewrites: list[dict[str, Any]] = []
    for run in range(plan.runs):
        count = int(SINGLE_RATE * plan.single_seconds)
        fresh = gen.generate(count, seed=200 + run, run=f"single{run}-")
        with stack.rewrites() as seen:
            result = loop.run(publish_http.open_loop(
                base, publish_http.single_requests(fresh), SINGLE_RATE))
        rewrites.append(asdict(seen))
        latency_runs.append(result["latencies"])
        late.append(round(result["late_ms_max"], 2))
        achieved.append(round(result["achieved_rate"]))
        errors += len(result["errors"])
        samples += result["errors"][:2]
        log(f"HTTP single run {run + 1}: p50 {percentile(result['latencies'], 50):.2f} ms, "
            f"p99 {percentile(result['latencies'], 99):.2f} ms{seen.note()}")
    _latency_pair(figures, "ours.http_single", latency_runs,
                  {"offered_req_per_s": SINGLE_RATE, "completed_req_per_s": achieved,
                   "errors": errors, "error_samples": samples,
                   "sender_late_ms_max": late, "aof_rewrites": rewrites})

    sustained = _fig(figures, "ours.http_single_max_rate")
    p99s, errors, samples = [], 0, []
    for run in range(plan.runs):
        count = int(plan.max_rate_seconds * 8000)
        fresh = gen.generate(count, seed=300 + run, run=f"max{run}-")
        result = loop.run(publish_http.closed_loop(
            base, publish_http.single_requests(fresh), MAX_RATE_CLIENTS, plan.max_rate_seconds))
        sustained.runs.append(result["rate"])
        p99s.append(round(percentile(result["latencies"], 99), 2))
        errors += len(result["errors"])
        samples += result["errors"][:2]
        log(f"HTTP single max run {run + 1}: {result['rate']:,.0f} req/s, p99 {p99s[-1]} ms")
    sustained.detail.update(clients=MAX_RATE_CLIENTS, seconds=plan.max_rate_seconds,
                            p99_ms=p99s, errors=errors, error_samples=samples,
                            method="closed loop: clients send back to back")
