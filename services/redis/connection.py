"""Which server to talk to, and the clients that talk to it."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from services.config import Settings
from services.redis.embedded import EmbeddedServer, running_url, start_lock


def client(url: str) -> Any:
    """An asyncio client that retries briefly when the connection drops."""
    retry = Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=5)
    return aioredis.Redis.from_url(
        url, retry=retry, retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=30,
    )


def resolve_url(settings: Settings, start: bool = True) -> tuple[str, EmbeddedServer | None]:
    """TIMELINE_REDIS_URL, else the data dir's running embedded server, else a new one."""
    if settings.redis_url:
        return settings.redis_url, None
    with start_lock(settings.data_dir):
        url = running_url(settings.data_dir)
        if url:
            return url, None
        if not start:
            raise RuntimeError(f"no server is running for {settings.data_dir}")
        server = EmbeddedServer(settings.data_dir, settings.fsync)
        return server.start(), server
