"""uvicorn, stopped by SIGTERM or SIGINT with a clean exit status.

uvicorn re-raises the signal it caught once it has shut down, so a process
asked to stop would die "killed by SIGTERM"; service managers and our tests
read that as a crash. Here the signal only asks the server to finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

import uvicorn
from litestar import Litestar

from services.http.app import request_logging
from services.http.head import head_as_get
from services.http.live import close_streams


class GracefulServer(uvicorn.Server):
    def __init__(self, app: Litestar, host: str, port: int) -> None:
        self.litestar = app
        # The request log wraps the whole app, not its routes: a request no route
        # matches (404, 405) is logged and counted too; HEAD is answered as GET.
        super().__init__(uvicorn.Config(request_logging(head_as_get(app)), host=host, port=port,
                                        log_config=None, access_log=False,
                                        timeout_graceful_shutdown=10))

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Open live streams (SSE) never finish by themselves: ask them to end, or
        # uvicorn would wait out its graceful-shutdown timeout for them.
        close_streams(self.litestar)
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
