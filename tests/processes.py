"""Real processes for tests: the HTTP API and projection workers, as users run them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from services import subprocesses
from services.redis.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent


def env_for(url: str | None, **extra: str) -> dict[str, str]:
    env = {**os.environ, "TIMELINE_LOG_FORMAT": "json", "TIMELINE_PARTITIONS": "8", **extra}
    if url:
        env["TIMELINE_REDIS_URL"] = url
    return env


def python_cli() -> list[str]:
    """The `timeline` command as this interpreter runs it."""
    return [sys.executable, "-m", "services.cli"]


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-m", "services.cli", *args], env=env,
                                cwd=ROOT, stdin=subprocess.DEVNULL, stdout=handle, stderr=handle)


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    return subprocesses.stop(process, grace=20, sig=sig)


def wait_http(base: str, path: str = "/healthz", timeout: float = 30.0,
              process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}")
        try:
            if httpx.get(base + path, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{base}{path} did not answer 200 in {timeout}s")


class Api:
    def __init__(self, url: str, log: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process = start(["api", "--port", str(self.port)], env_for(url), log)
        wait_http(self.base, process=self.process)
