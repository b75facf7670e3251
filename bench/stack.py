"""What the benchmark runs against: a fresh embedded server in a temp dir, and
real `timeline api` / `timeline worker` processes as users start them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis

from projections.runner import PROJECTION
from projections.store import TAG
from services.redis.embedded import EmbeddedServer, die_with_parent, free_port

ROOT = Path(__file__).resolve().parent.parent
PARTITIONS = 8
REWRITE_WAIT = 300.0  # seconds; a rewrite of a 1M store takes ~10


@dataclass
class Rewrites:
    """What the server's AOF rewrites did during one measured run.

    A rewrite forks the server, and the fork stops it (66-75 ms for a freshly built
    1M-event store here, 89-166 ms once it had grown); the child then competes for
    the two cores for seconds (~10 s at 1M). A latency figure's tail is read knowing
    which of its runs met one."""

    running_at_start: bool
    forks: int = 0
    last_fork_ms: float = 0.0

    def note(self) -> str:
        """For the run's log line: "" when no rewrite touched the run."""
        parts = ["an AOF rewrite was running at the start"] if self.running_at_start else []
        if self.forks:
            parts.append(f"{self.forks} AOF rewrite fork{'s' if self.forks > 1 else ''} "
                         f"(the last stopped the server {self.last_fork_ms:.1f} ms)")
        return "; " + ", ".join(parts) if parts else ""


class Stack:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.server = EmbeddedServer(workdir / "data")
        self.url = ""
        self.as_of = ""  # an instant halfway through recording the store
        self.amended = 0  # how many of the hot entity's events were later amended
        self.api_pid = 0
        self.server_pid = 0  # the server process: its CPU (profiles) and its allocator
        self.server_cpu_mark = 0.0
        self.sync: redis.Redis | None = None

    def __enter__(self) -> Stack:
        self.url = self.server.start()
        self.server_pid = self.server.process.pid if self.server.process else 0
        # redis-py times reads out after 5 s by default; FLUSHALL SYNC of a 1M-event
        # store (~3 GB, hundreds of thousands of keys) takes longer.
        self.sync = redis.Redis.from_url(self.url, socket_timeout=600)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.sync is not None:
            self.sync.close()
        self.server.stop()

    @property
    def redis(self) -> redis.Redis:
        assert self.sync is not None
        return self.sync

    def flush(self) -> None:
        self.settle()  # a rewrite of what is flushed would still take a core
        # SYNC: the server frees flushed data lazily otherwise, and memory is measured next
        self.redis.execute_command("FLUSHALL", "SYNC")  # type: ignore[no-untyped-call]

    def used_memory(self) -> int:
        """Allocated bytes, once deletions freed in the background have finished."""
        return int(self.settle()["used_memory"])

    def settle(self, within: float = 30.0) -> dict[str, Any]:
        """Wait until the server has finished the background work earlier steps left it,
        and return its memory info.

        Valkey frees large deleted values in a background thread, so DEL, UNLINK and
        FLUSHALL return early; a measurement started meanwhile pays for the last one's
        cleanup (1M-event projection runs right after a reset measured 11-15% less).
        An AOF rewrite set off by earlier writes takes a core for seconds (at 1M, HTTP
        batch runs that met one measured 24,000-30,000 events/s against 44,000)."""
        time.sleep(0.2)  # a rewrite earlier writes called for starts on the server's timer
        deadline = time.monotonic() + REWRITE_WAIT
        while self.rewriting():
            if time.monotonic() > deadline:
                raise TimeoutError(f"an AOF rewrite still runs after {REWRITE_WAIT:.0f} s")
            time.sleep(0.05)
        deadline = time.monotonic() + within
        while True:
            info: dict[str, Any] = self.redis.info("memory")
            if not info.get("lazyfree_pending_objects") or time.monotonic() > deadline:
                return info
            time.sleep(0.05)

    def rewriting(self) -> bool:
        """Whether an AOF rewrite is running or waiting to start."""
        state = self.redis.info("persistence")
        return bool(state["aof_rewrite_in_progress"] or state["aof_rewrite_scheduled"])

    @contextlib.contextmanager
    def rewrites(self) -> Iterator[Rewrites]:
        """Record the AOF rewrites that run during the block (filled in when it ends)."""
        info = self.redis.info()  # stats and persistence read at one instant
        seen = Rewrites(bool(info["aof_rewrite_in_progress"]))
        yield seen
        stats = self.redis.info("stats")
        seen.forks = int(stats["total_forks"]) - int(info["total_forks"])
        if seen.forks:
            seen.last_fork_ms = int(stats["latest_fork_usec"]) / 1000

    def reset_read_model(self) -> None:
        """Forget every projection: read model, consumer groups, leases, workers."""
        client = self.redis
        doomed = [k for k in client.scan_iter(match=f"timeline:{TAG}:*", count=10_000)]
        doomed += [k for k in client.scan_iter(match="timeline:{p*}:lease:*", count=1000)]
        doomed.append(b"timeline:workers")
        for start in range(0, len(doomed), 10_000):
            client.delete(*doomed[start:start + 10_000])
        for partition in range(PARTITIONS):
            with contextlib.suppress(redis.ResponseError):
                client.xgroup_destroy(f"timeline:{{p{partition}}}:log", PROJECTION)
        self.settle()

    def log_tail(self, name: str, lines: int = 15) -> str:
        """The end of a child's log, for an error message."""
        try:
            text = (self.workdir / name).read_text(errors="replace")
        except FileNotFoundError:
            return f"(no {name})"
        return "\n".join(text.splitlines()[-lines:])

    def env(self) -> dict[str, str]:
        return {**os.environ, "TIMELINE_REDIS_URL": self.url, "TIMELINE_LOG_FORMAT": "json",
                "TIMELINE_PARTITIONS": str(PARTITIONS)}

    def spawn(self, args: list[str], log_name: str) -> subprocess.Popen[bytes]:
        with (self.workdir / log_name).open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "services.cli", *args], env=self.env(), cwd=ROOT,
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=die_with_parent)

    @contextlib.contextmanager
    def api(self) -> Iterator[str]:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        process = self.spawn(["api", "--port", str(port)], "api.log")
        self.api_pid = process.pid
        try:
            _wait_http(base, process)
            yield base
        finally:
            stop(process)

    @contextlib.contextmanager
    def worker(self) -> Iterator[subprocess.Popen[bytes]]:
        process = self.spawn(["worker"], "worker.log")
        try:
            yield process
        finally:
            stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_http(base: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"`timeline api` exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return
        time.sleep(0.05)
    raise TimeoutError(f"{base} did not answer in {timeout}s")
