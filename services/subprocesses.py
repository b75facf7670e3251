"""Stopping the processes we start: ask first, insist after a grace period."""

from __future__ import annotations

import signal
import subprocess
from typing import Any


def stop(process: subprocess.Popen[Any], grace: float = 10.0,
         sig: int = signal.SIGTERM) -> int:
    """Send `sig`, wait up to `grace` seconds, then SIGKILL; return the exit status."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            return process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()
