"""The `timeline worker` process: the ingest consumer beside the projection
worker, both stopped gracefully by SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import signal

from projections.runner import Worker
from services import heap
from services.bootstrap import Services
from services.ingest.consumer import IngestConsumer


async def run_worker(built: Services) -> None:
    """Run both until a signal (exit normally) or until one fails (stop the other, raise)."""
    heap.for_batches()
    projector = Worker(built.client, built.url, built.partitions)
    ingest = IngestConsumer(built.client, built.url, built.appender)

    def stop() -> None:
        projector.stop()
        ingest.stop()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    tasks = [asyncio.create_task(projector.run()), asyncio.create_task(ingest.run())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        stop()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
