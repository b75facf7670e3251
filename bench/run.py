"""`python -m bench.run --scale N`: every figure of issue 5 in one run against
a fresh embedded server; prints a table and writes bench/results.json."""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
from rich.console import Console

from bench import events as gen
from bench import measure, report
from bench.plan import Plan
from bench.stack import ROOT, Stack
from bench.stats import Figure, NotMeasured
from services.redis.embedded import allocator

QUIET_LOAD = 1.0  # 1-minute load average under which a machine counts as quiet


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--scale", type=int, default=200_000,
                        help="events in the store (default 200,000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median reported)")
    parser.add_argument("--quick", action="store_true",
                        help="short latency windows: a smoke run, not a measurement")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    args = parser.parse_args(argv)
    if args.scale < 1000 or args.runs < 1:
        parser.error("--scale must be at least 1000 and --runs at least 1")
    return args


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def loadavg() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def meta(command: list[str], plan: Plan, sample: list[dict[str, Any]], valkey: str,
         malloc: str, load: list[float]) -> dict[str, Any]:
    sizes = [len(msgspec.json.encode(e)) for e in sample[:10_000]]
    return {
        "command": " ".join(["python -m bench.run", *command]),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "scale": plan.scale, "runs": plan.runs, "quick": plan.quick,
        "machine": {"nproc": os.cpu_count(), "cpu": cpu_model(),
                    "python": platform.python_version(), "server": valkey,
                    "server_allocator": malloc,
                    "loadavg_at_start": load, "quiet": bool(load) and load[0] < QUIET_LOAD},
        "event_bytes_mean": round(sum(sizes) / len(sizes)),
        "workloads": {"limit_events": plan.limit_events, "peer_events": plan.peer_events,
                      "peer_sqlite_events": plan.peer_sqlite_events,
                      "http_batch_events": plan.http_batch_events,
                      "lag_seconds": plan.lag_seconds, "page_requests": plan.page_requests},
    }


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    plan = Plan(args.scale, args.runs, args.quick)
    console = Console()
    if not console.is_terminal:  # a log file or CI: do not squeeze the table into 80 columns
        console = Console(width=180)
    started = time.perf_counter()

    def log(message: str) -> None:
        console.log(message)

    figures: measure.Figures = {}
    measure.declare(figures)
    failures: list[str] = []

    loads: dict[str, float] = {}

    def attempt(name: str, step: Callable[[], None]) -> None:
        """A failing group is reported and leaves its figures unmeasured; the rest go on."""
        try:
            step()
            # the load right after each group: whether others shared the machine meanwhile
            loads[name] = (loadavg() or [0.0])[0]
        except Exception as exc:
            failures.append(f"{name}: {exc}")
            console.print_exception(max_frames=4)
            log(f"[red]{name} failed[/red]: {exc}")

    load = loadavg()
    if load and load[0] >= QUIET_LOAD:
        log(f"[yellow]the machine is busy (1-minute load {load[0]}): figures will be noisy; "
            f"a run to publish wants a load under {QUIET_LOAD}[/yellow]")
    log(f"generating {plan.scale:,} events")
    events = gen.generate(plan.scale)
    # The generated events live for the whole run; out of the cyclic collector's
    # sight, its full collections stop walking them, which would otherwise bill
    # every in-process figure (append, verify, replay) for the harness's own heap.
    gc.freeze()
    with tempfile.TemporaryDirectory(prefix="timeline-bench-") as tmp, Stack(Path(tmp)) as stack:
        server = stack.redis.info("server")
        info = meta(sys.argv[1:] if argv is None else argv, plan, events,
                    str(server.get("valkey_version") or server.get("redis_version")),
                    allocator(stack.server_pid), load)
        attempt("limits", lambda: measure.measure_limits(stack, plan, events, figures, log))
        attempt("peer", lambda: measure.measure_peer(plan, events, figures, log))
        attempt("store", lambda: measure.measure_store(stack, plan, events, figures, log))
        attempt("audit", lambda: measure.measure_audit(stack, plan, figures, log))
        with stack.api() as base:
            attempt("pages", lambda: measure.measure_pages(stack, base, plan, figures, log))
            attempt("lag", lambda: measure.measure_lag(stack, base, plan, figures, log))
            attempt("publish", lambda: measure.measure_publish(stack, base, plan, events,
                                                               figures, log))
    for key, figure in list(figures.items()):
        if isinstance(figure, Figure) and not figure.runs:
            figures[key] = NotMeasured(key, figure.label,
                                       "its measurement failed (see meta.failures)")
    info["seconds"] = round(time.perf_counter() - started, 1)
    info["machine"]["loadavg_at_end"] = loadavg()
    info["machine"]["load_after_each_group"] = loads
    info["failures"] = failures
    document = report.to_json(figures, info)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report.write(args.out, document)
    report.print_table(figures, plan.scale, console)
    missing = [f.key for f in figures.values() if isinstance(f, NotMeasured)]
    log(f"wrote {args.out} in {info['seconds']} s; not measured: {', '.join(missing) or 'none'}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
