"""The composition root: settings in, connected adapters out. Entry points
(HTTP app, CLI, worker) build everything through here and nowhere else."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from projections.store import ReadModel
from services.audit.parallel import Helpers
from services.config import Settings, mask_url
from services.log.append import Appender
from services.log.meta import ensure_partitions
from services.log.reader import LogReader
from services.redis import connection
from services.redis.durability import check_persistence
from services.redis.embedded import EmbeddedServer, ServerUnavailable

FIRST_ANSWER_SECONDS = 10.0


@dataclass
class Services:
    settings: Settings
    url: str
    client: Any
    partitions: int
    appender: Appender
    read_model: ReadModel
    log: LogReader
    server: EmbeddedServer | None = None


def helpers_for(services: Services) -> Helpers:
    """A replay's helper processes connect where this process does."""
    return Helpers(services.url, services.settings.redis_cluster)


async def connect(settings: Settings, url: str, server: EmbeddedServer | None = None) -> Services:
    client = connection.client(url, settings.redis_cluster)
    try:
        # Bounded once, here: a server that takes the connection but never answers (a
        # stopped process) held every command, and the CLI, for minutes. Later commands
        # keep no such bound: a blocking read or WAIT may legitimately take seconds.
        async with asyncio.timeout(FIRST_ANSWER_SECONDS):
            partitions = await ensure_partitions(client, settings.partitions)
    except TimeoutError:
        await client.aclose()
        raise ServerUnavailable(
            f"{mask_url(url)} took the connection but did not answer within "
            f"{FIRST_ANSWER_SECONDS:g} s") from None
    if server is None:  # ours runs with AOF on; another server is whatever its operator made it
        await check_persistence(client)
    return Services(
        settings=settings, url=url, client=client, partitions=partitions,
        appender=Appender(client, partitions, settings.write_replicas),
        read_model=ReadModel(client),
        log=LogReader(client, partitions), server=server,
    )


@contextlib.asynccontextmanager
async def services(settings: Settings, start_server: bool = True) -> AsyncIterator[Services]:
    """Everything connected; an embedded server started here stops on exit."""
    url, server = connection.resolve_url(settings, start=start_server)
    try:
        built = await connect(settings, url, server)
        try:
            yield built
        finally:
            await built.client.aclose()
    finally:
        if server is not None:
            server.stop()
