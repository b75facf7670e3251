"""`python -m bench.scaling --scale N`: issue 7's figures on the local Redis
Cluster (6 nodes: 3 masters, 3 replicas, services/redis/cluster.py).

Each run, for each worker count: empty the cluster, append SCALE events in
process (the bench's `ours.append`: full validation, batches of 500), then
project them with that many real `timeline worker` processes into an empty
read model. Worker counts are interleaved within a run so a change in the
machine's load touches every count alike. Besides the rates it records the
CPU seconds every process involved spent (workers, nodes, this process) and
data memory growth of every node (INFO `used_memory` less buffers). Writes
bench/scaling.json and prints a table; `python -m bench.scaling --markdown
bench/scaling.json` prints the Markdown tables docs/scaling.md quotes.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
from rich.console import Console

from bench import events as gen
from bench import ours, scaling_report
from bench.clusterstack import PARTITIONS, ClusterStack
from bench.profile import cpu_seconds
from bench.run import QUIET_LOAD, cpu_model, loadavg
from bench.stack import ROOT
from bench.stats import Figure
from services import bootstrap, config
from services.redis import loop
from services.redis.cluster import NODE_TIMEOUT_MS
from services.redis.embedded import MEMORY_SETTINGS

STALL_SECONDS = 60.0  # no progress for this long: the workers are stuck, not slow
POLL_SECONDS = 0.005

Figures = dict[str, Figure]


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=20_000, help="events (default 20,000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median reported)")
    parser.add_argument("--workers", default="1,2,3",
                        help="worker counts to measure, comma-separated (default 1,2,3)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "scaling.json")
    parser.add_argument("--markdown", type=Path, metavar="RESULTS",
                        help="print the Markdown tables of a results file and exit")
    args = parser.parse_args(argv)
    if args.markdown:
        return args
    try:
        args.worker_counts = [int(w) for w in args.workers.split(",")]
    except ValueError:
        parser.error(f"--workers: not a comma-separated list of numbers: {args.workers!r}")
    if any(w < 1 or w > PARTITIONS for w in args.worker_counts):
        parser.error(f"--workers: each count must be from 1 to {PARTITIONS} (the partitions)")
    if args.scale < 500 or args.runs < 1:
        parser.error("--scale must be at least 500 and --runs at least 1")
    return args


def _per_event(before: Mapping[str, float], after: Mapping[str, float], events: int,
               factor: float) -> dict[str, float]:
    return {k: (after[k] - before[k]) * factor / events for k in after}


def append_once(stack: ClusterStack, events: list[dict[str, Any]]) -> dict[str, Any]:
    """Empty the cluster and append `events`: rate, CPU µs and log bytes per event."""
    stack.flush()
    memory, nodes_cpu, own_cpu = stack.data_memory(), stack.node_cpu(), time.process_time()
    seconds = loop.run(ours.append(stack.url, events))
    own = time.process_time() - own_cpu  # includes connecting: negligible beside the work
    stack.settle()  # the replicas' share of the work is done once they caught up
    count = len(events)
    return {"rate": count / seconds,
            "cpu_us": {"client": own * 1e6 / count,
                       **_per_event(nodes_cpu, stack.node_cpu(), count, 1e6)},
            "bytes": _per_event(memory, stack.data_memory(), count, 1)}


async def _connect(url: str) -> bootstrap.Services:
    settings = config.load({"TIMELINE_REDIS_URL": url, "TIMELINE_PARTITIONS": str(PARTITIONS)})
    return await bootstrap.connect(settings, url)


def project_once(stack: ClusterStack, workers: int, within: float) -> dict[str, Any]:
    """Project the log with `workers` fresh worker processes into an empty read model."""
    memory = stack.data_memory()
    result = loop.run(_project(stack, workers, within))
    stack.settle()
    result["bytes"] = _per_event(memory, stack.data_memory(), result["events"], 1)
    return result


def _cpu_marks(stack: ClusterStack, pids: list[int]) -> dict[str, float]:
    marks = {f"w{i}": cpu_seconds(pid) for i, pid in enumerate(pids)}
    return {**marks, **stack.node_cpu(), "bench": time.process_time()}


async def _project(stack: ClusterStack, count: int, within: float) -> dict[str, Any]:
    """The rate counts from the first applied batch seen (so interpreter start-up is
    not charged to projection) until every partition's applied sequence reaches its
    head; start-up is reported on its own. CPU is counted over the same window."""
    services = await _connect(stack.url)
    workers = []
    try:
        heads = await services.log.heads()
        total = sum(heads.values())
        spawned = time.perf_counter()
        workers = [stack.spawn_worker(i) for i in range(count)]
        pids = [w.pid for w in workers]
        spawn_cpu = _cpu_marks(stack, pids)
        first_at, first_applied, first_cpu = 0.0, 0, spawn_cpu
        progress_at, progress = spawned, -1
        while True:
            applied = await services.read_model.applied()
            now = time.perf_counter()
            done = sum(min(applied.get(p, 0), s) for p, s in heads.items())
            if done and not first_at:
                first_at, first_applied, first_cpu = now, done, _cpu_marks(stack, pids)
            if done >= total:
                break
            if done > progress:
                progress_at, progress = now, done
            for i, worker in enumerate(workers):
                if worker.poll() is not None:
                    raise RuntimeError(f"`timeline worker` {i} exited with {worker.returncode}: "
                                       + stack.log_tail(i))
            if now - progress_at > STALL_SECONDS or now - spawned > within:
                raise TimeoutError(f"{count} workers projected {done} of {total} events and "
                                   f"then stalled: {stack.log_tail(0)}")
            await asyncio.sleep(POLL_SECONDS)
        last_cpu = _cpu_marks(stack, pids)
        owners = stack.lease_owners()
    finally:
        stack.stop_workers(workers)
        await services.client.aclose()
    if first_applied >= total or now <= first_at:
        # all done before the first look (tiny logs): charge the start-up too
        first_at, first_applied, first_cpu = spawned, 0, spawn_cpu
    busy, projected = now - first_at, total - first_applied
    spent = {k: last_cpu[k] - first_cpu[k] for k in last_cpu}
    names = sorted(set(owners.values()) - {""})
    return {"rate": projected / busy, "events": total, "startup_s": first_at - spawned,
            "cpu_us": {k: v * 1e6 / projected for k, v in spent.items()},
            "cores_busy": sum(spent.values()) / busy,
            "partitions_per_worker": sorted((list(owners.values()).count(n) for n in names),
                                            reverse=True)}


def _fig(figures: Figures, key: str, label: str, unit: str, higher: bool = True) -> Figure:
    if key not in figures:
        figures[key] = Figure(key, label, "ours", unit, higher)
    return figures[key]


def record_append(figures: Figures, result: dict[str, Any]) -> None:
    _fig(figures, "append", "in-process append, 500/batch", "events/s").runs.append(
        result["rate"])
    cpu = result["cpu_us"]
    _fig(figures, "append.cpu", "append CPU, all processes", "µs/event", False).runs.append(
        sum(cpu.values()))
    for name, value in cpu.items():
        _fig(figures, f"append.cpu.{name}", f"append CPU, {name}", "µs/event",
             False).runs.append(value)
    record_busiest(figures, "append", cpu)
    for name, value in result["bytes"].items():
        _fig(figures, f"memory.log.{name}", f"log memory, {name}", "bytes/event",
             False).runs.append(value)


def record_busiest(figures: Figures, prefix: str, cpu: dict[str, float]) -> None:
    """The one process (each is single-threaded) that spent the most CPU per event of
    the whole batch: with a core to itself it could keep up with 10^6 / that many
    events a second at most, however many cores the others get."""
    name = max(cpu, key=lambda k: cpu[k])
    figure = _fig(figures, f"{prefix}.busiest", f"{prefix}: busiest single process",
                  "µs/event", False)
    figure.runs.append(cpu[name])
    figure.detail.setdefault("process", []).append(name)


def record_projection(figures: Figures, workers: int, result: dict[str, Any]) -> None:
    prefix = f"projection.{workers}"
    rate = _fig(figures, prefix, f"projection, {workers} worker(s)", "events/s")
    rate.runs.append(result["rate"])
    rate.detail.setdefault("startup_seconds", []).append(round(result["startup_s"], 2))
    rate.detail.setdefault("partitions_per_worker", []).append(result["partitions_per_worker"])
    cpu = result["cpu_us"]
    _fig(figures, f"{prefix}.cpu", f"projection CPU, {workers} worker(s), all processes",
         "µs/event", False).runs.append(sum(cpu.values()))
    groups = {"workers": sum(v for k, v in cpu.items() if k.startswith("w")),
              **{k: v for k, v in cpu.items() if not k.startswith("w")}}
    for name, value in groups.items():
        _fig(figures, f"{prefix}.cpu.{name}", f"projection CPU, {workers} worker(s), {name}",
             "µs/event", False).runs.append(value)
    record_busiest(figures, prefix, cpu)
    _fig(figures, f"{prefix}.cores", f"cores busy, {workers} worker(s)", "cores",
         False).runs.append(result["cores_busy"])
    for name, value in result["bytes"].items():
        _fig(figures, f"memory.read_model.{name}", f"read-model memory, {name}",
             "bytes/event", False).runs.append(value)


def meta(argv: list[str], args: argparse.Namespace, stack: ClusterStack,
         sample: list[dict[str, Any]], load: list[float]) -> dict[str, Any]:
    server = stack.nodes[0].client().info("server")
    sizes = [len(msgspec.json.encode(e)) for e in sample[:10_000]]
    return {
        "command": " ".join(["python -m bench.scaling", *argv]),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "scale": args.scale, "runs": args.runs, "workers": args.worker_counts,
        "partitions": PARTITIONS, "event_bytes_mean": round(sum(sizes) / len(sizes)),
        "cluster": {"nodes": [{"name": n.name, "role": n.role, "slots": n.slots,
                               "partitions": n.partitions, "read_model": n.read_model}
                              for n in stack.layout()],
                    "node_timeout_ms": NODE_TIMEOUT_MS, "persistence": "AOF everysec",
                    "server_args": list(MEMORY_SETTINGS),
                    "write_replicas": 0},
        "machine": {"nproc": os.cpu_count(), "cpu": cpu_model(),
                    "python": platform.python_version(),
                    "server": str(server.get("valkey_version") or server.get("redis_version")),
                    "loadavg_at_start": load, "quiet": bool(load) and load[0] < QUIET_LOAD},
    }


def measure(args: argparse.Namespace, argv: list[str], console: Console) -> dict[str, Any]:
    started = time.perf_counter()
    load = loadavg()
    if load and load[0] >= QUIET_LOAD:
        console.log(f"[yellow]the machine is busy (1-minute load {load[0]}): figures will "
                    f"be noisy[/yellow]")
    events = gen.generate(args.scale)
    figures: Figures = {}
    loads: list[float] = []
    within = max(600.0, args.scale / 100)  # a floor of 100 events/s: anything slower is stuck
    with tempfile.TemporaryDirectory(prefix="timeline-scaling-") as tmp, \
            ClusterStack(Path(tmp)) as stack:
        ports = ", ".join(f"{n.name} {n.node.port}" for n in stack.layout())
        console.log(f"local cluster up: {ports}")
        info = meta(argv, args, stack, events, load)
        for run in range(args.runs):
            for workers in args.worker_counts:
                appended = append_once(stack, events)
                record_append(figures, appended)
                projected = project_once(stack, workers, within)
                record_projection(figures, workers, projected)
                loads.append((loadavg() or [0.0])[0])
                console.log(
                    f"run {run + 1}, {workers} worker(s): append {appended['rate']:,.0f} "
                    f"events/s; projection {projected['rate']:,.0f} events/s (start-up "
                    f"{projected['startup_s']:.1f} s, {projected['cores_busy']:.2f} cores "
                    f"busy, partitions {projected['partitions_per_worker']})")
    _totals(figures, info["cluster"]["nodes"])
    info["seconds"] = round(time.perf_counter() - started, 1)
    info["machine"]["loadavg_at_end"] = loadavg()
    info["machine"]["load_after_each_step"] = loads
    return {"meta": info, "figures": {k: f.as_json() for k, f in figures.items()}}


def _totals(figures: Figures, nodes: list[dict[str, Any]]) -> None:
    """Per-event memory summed over the masters and over every node, run by run."""
    masters = [n["name"] for n in nodes if n["role"] == "master"]
    for part in ("log", "read_model"):
        per_node = {n["name"]: figures[f"memory.{part}.{n['name']}"].runs for n in nodes}
        label = part.replace("_", "-")
        for key, names in (("masters", masters), ("all", list(per_node))):
            figure = _fig(figures, f"memory.{part}.{key}", f"{label} memory, {key}",
                          "bytes/event", False)
            figure.runs = [sum(run) for run in zip(*(per_node[n] for n in names), strict=True)]


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    if args.markdown:
        document = msgspec.json.decode(args.markdown.read_bytes())
        print(scaling_report.markdown(document), end="")
        return 0
    console = Console()
    if not console.is_terminal:  # a log file or CI: do not squeeze the table
        console = Console(width=200)
    document = measure(args, sys.argv[1:] if argv is None else argv, console)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(msgspec.json.format(msgspec.json.encode(document), indent=2) + b"\n")
    console.print(scaling_report.table(document))
    console.log(f"wrote {args.out} in {document['meta']['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
