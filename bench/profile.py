"""Where the time goes: `python -m bench.profile WORKLOAD --scale N`.

Builds a store against a fresh embedded server, then runs one workload under
py-spy (sampling CPU only: time spent waiting for Redis is not in it) and
prints, for the process doing the work: its CPU seconds, the server's CPU
seconds and per-command cost (INFO commandstats), and the functions that
take the most samples, by their own time and with their callees. `memory`
instead splits the server's memory per event by key family, and `aof` what
the bench's lag workload (5,000 events/s) writes to the AOF per event, by
command and key family.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import events as gen
from bench import ours
from bench.stack import ROOT, Stack
from services.redis import loop

PY_SPY = Path(sys.executable).with_name("py-spy")
PAGE_REQUESTS = 3000  # `pages` counts requests where the others count events


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def sampled(pid: int, raw: Path) -> Iterator[None]:
    """py-spy records `pid` for the duration of the block (Ctrl-C makes it write)."""
    spy = subprocess.Popen([str(PY_SPY), "record", "--pid", str(pid), "--format", "raw",
                            "--full-filenames",
                            "--rate", "200", "-o", str(raw)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # let it attach before the work starts
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(60)


def summarize(raw: Path, top: int = 18) -> str:
    """Own and inclusive sample shares of the busiest functions."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";")]
        total += count
        own[frames[-1][0]] += count
        for frame, mine in set(frames):
            if mine:
                inclusive[frame] += count
    if not total:
        return "(no samples)"
    lines = [f"{total} samples", "own time:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    lines.append("with callees (our modules only):")
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(top)]
    return "\n".join(lines)


def _short(frame: str) -> tuple[str, bool]:
    """`func (/abs/pkg/module.py:123)` -> (`func (pkg/module.py)`, whether it is our code)."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    ours = path.startswith(str(ROOT)) and "/.venv/" not in path
    return f"{name} ({'/'.join(Path(path).parts[-2:])})", ours


def server_costs(stack: Stack, events: int) -> str:
    stats = stack.redis.info("commandstats")
    rows = sorted(stats.items(), key=lambda kv: -kv[1]["usec"])[:6]
    return "\n".join(f"  {name.removeprefix('cmdstat_'):<14} calls {s['calls']:>8,}  "
                     f"{s['usec_per_call']:>9.1f} µs/call  {s['usec'] / events:>7.1f} µs/item"
                     for name, s in rows)


def family(key: str) -> str:
    """A key without its variable part: `timeline:{rm}:blue:tl:entity:org-1` ->
    `timeline:{rm}:blue:tl:entity:*`, `timeline:{p3}:log` -> `timeline:{p*}:log`."""
    parts = key.split(":")
    if len(parts) > 1 and parts[1].startswith("{p"):
        parts[1] = "{p*}"
    for i, part in enumerate(parts):
        if part in ("tl", "ever") and i + 2 < len(parts):
            return ":".join([*parts[:i + 2], "*"])
    return ":".join(parts)


def memory(scale: int) -> None:
    """Bytes per event by key family, after appending and projecting `scale` events."""
    events = gen.generate(scale)
    with tempfile.TemporaryDirectory(prefix="timeline-profile-") as tmp, Stack(Path(tmp)) as st:
        baseline = st.used_memory()
        loop.run(ours.append(st.url, events))
        ours.project(st)
        total = st.used_memory() - baseline
        sizes: Counter[str] = Counter()
        counts: Counter[str] = Counter()
        for raw_key in st.redis.scan_iter(count=10_000):
            key = raw_key.decode()
            sizes[family(key)] += int(st.redis.memory_usage(key, samples=0) or 0)
            counts[family(key)] += 1
        print(f"used_memory delta {total / scale:,.0f} bytes/event; by key family "
              f"(MEMORY USAGE, bytes/event):")
        for name, size in sizes.most_common(20):
            print(f"  {size / scale:>8,.0f}  {counts[name]:>7,} keys  {name}")


def aof(scale: int, seconds: float = 20.0) -> None:
    """AOF bytes per event of the lag workload against a store of `scale` events."""
    from bench import lag
    from bench.aof import tally
    from bench.measure import wait_projected
    from bench.plan import LAG_BATCH, LAG_RATE

    events = gen.generate(scale)
    with tempfile.TemporaryDirectory(prefix="timeline-profile-") as tmp, Stack(Path(tmp)) as st:
        loop.run(ours.append(st.url, events))
        ours.project(st)
        with st.api() as base, st.worker():
            loop.run(wait_projected(st.url))
            # One increment file for the whole run: a rewrite now, none during it.
            st.redis.config_set("auto-aof-rewrite-percentage", 0)
            st.settle()  # one the projection set off would refuse ours
            st.redis.bgrewriteaof()
            st.settle()
            fresh = gen.generate(int(seconds * LAG_RATE), seed=100, run="aof-")
            bodies = [gen.body(b) for b in gen.batches(fresh, LAG_BATCH)]
            result = loop.run(lag.lag(base, st.url, bodies, LAG_RATE / LAG_BATCH))
            if result["errors"]:
                raise SystemExit(f"publishing failed: {result['errors'][:2]}")
        # A write held behind the background fsync of `everysec` waits up to 2 s.
        time.sleep(2.5)
        increments = sorted((st.server.data_dir / "appendonlydir").glob("*.incr.aof"),
                            key=lambda f: int(f.name.split(".")[-3]))
        if not increments:
            raise SystemExit("the server wrote no AOF increment file")
        sizes, calls = tally(increments[-1].read_bytes(), family)
    appended = calls["XADD", "timeline:{p*}:log"]  # the events the log took
    if not appended:
        raise SystemExit("the increment file holds no XADD to the log")
    print(f"AOF per event at {LAG_RATE:,} events/s offered against {scale:,}: "
          f"{sum(sizes.values()) / appended:,.0f} bytes, {appended:,} events appended "
          f"({increments[-1].name})")
    for (name, key), size in sizes.most_common(20):
        print(f"  {size / appended:>7,.0f} bytes  {calls[name, key] / appended:5.2f} calls"
              f"  {name} {key}")


def run(what: str, scale: int, seconds: float = 20.0) -> None:
    if what == "memory":
        memory(scale)
        return
    if what == "aof":
        aof(scale, seconds)
        return
    events = gen.generate(scale)
    with tempfile.TemporaryDirectory(prefix="timeline-profile-") as tmp, Stack(Path(tmp)) as st:
        raw = Path(tmp) / "profile.txt"
        server_pid = st.server_pid
        if what != "append":
            loop.run(ours.append(st.url, events))
        busy, wall, done = _workload(what, st, events, raw)
        unit = "requests" if what == "pages" else "events"
        print(f"{what}: {done:,} {unit} in {wall:.1f} s wall = {done / wall:,.0f} {unit}/s")
        print(f"CPU: profiled process {busy:.1f} s ({busy / done * 1e6:.0f} µs per item), "
              f"server {cpu_seconds(server_pid) - st.server_cpu_mark:.1f} s")
        print("server commands by total time:\n" + server_costs(st, done))
        print(summarize(raw))


def _workload(what: str, st: Stack, events: list[dict[str, Any]],
              raw: Path) -> tuple[float, float, int]:
    """Run `what` under py-spy: the profiled process's CPU seconds, wall seconds, and
    the events it handled while sampled."""
    if what == "worker":
        with st.worker() as process, sampled(process.pid, raw):
            before, started = _mark(st, process.pid)
            already = loop.run(_until_projected(st, len(events)))
            # what the worker did before the sampler attached is left out
            return (cpu_seconds(process.pid) - before, time.perf_counter() - started,
                    len(events) - already)
    if what == "http-batch":
        from bench.publish_http import batch_publish

        st.flush()
        bodies = [gen.body(b) for b in gen.batches(events, 500)]
        with st.api() as base:
            pid = st.api_pid
            with sampled(pid, raw):
                before, started = _mark(st, pid)
                loop.run(batch_publish(base, bodies, len(events)))
                return cpu_seconds(pid) - before, time.perf_counter() - started, len(events)
    if what == "pages":
        from bench.pages import page_clients

        ours.project(st)
        with st.api() as base, sampled(st.api_pid, raw):
            before, started = _mark(st, st.api_pid)
            loop.run(page_clients(base, gen.HOT, PAGE_REQUESTS))
            return cpu_seconds(st.api_pid) - before, time.perf_counter() - started, PAGE_REQUESTS
    step: Callable[[], Any]
    if what == "append":
        step = lambda: loop.run(ours.append(st.url, events))  # noqa: E731
    elif what == "replay":
        from bench.audit import replay_rate

        ours.project(st)
        # in this process, where py-spy sees it, not in helper processes
        step = lambda: loop.run(replay_rate(st.url, 8, split=False))  # noqa: E731
    elif what == "verify":
        from bench.audit import verify_rate

        step = lambda: loop.run(verify_rate(st.url))  # noqa: E731
    else:
        raise SystemExit(f"unknown workload {what!r}")
    with sampled(os.getpid(), raw):
        before, started = _mark(st, os.getpid())
        step()
        return cpu_seconds(os.getpid()) - before, time.perf_counter() - started, len(events)


def _mark(st: Stack, pid: int) -> tuple[float, float]:
    """Start counting: server command stats and CPU from now; (process CPU, clock)."""
    st.redis.config_resetstat()
    st.server_cpu_mark = cpu_seconds(st.server_pid)
    return cpu_seconds(pid), time.perf_counter()


async def _until_projected(st: Stack, total: int) -> int:
    """Wait until `total` events are applied; return how many were applied already."""
    from services import bootstrap, config

    settings = config.load({"TIMELINE_REDIS_URL": st.url, "TIMELINE_PARTITIONS": "8"})
    services = await bootstrap.connect(settings, st.url)
    try:
        first = done = sum((await services.read_model.applied()).values())
        while done < total:  # polling the server: no local event to wait on
            await asyncio.sleep(0.01)
            done = sum((await services.read_model.applied()).values())
        return first
    finally:
        await services.client.aclose()


def main() -> None:
    if not PY_SPY.exists():
        raise SystemExit(f"py-spy is not installed beside {sys.executable}: "
                         "pip install py-spy (it is in the dev extra)")
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("what", choices=["worker", "append", "http-batch", "replay", "verify",
                                         "pages", "memory", "aof"])
    parser.add_argument("--scale", type=int, default=50_000)
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="how long `aof` runs the lag workload")
    args = parser.parse_args()
    run(args.what, args.scale, args.seconds)


if __name__ == "__main__":
    main()
