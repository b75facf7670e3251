"""Shared fixtures: a real Redis-compatible server for the whole session.

The embedded Valkey (started by our own `EmbeddedServer`, as production does)
unless TIMELINE_TEST_REDIS_URL names another server. Each test starts from an
empty database.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

from services import bootstrap, config
from services.redis.embedded import EmbeddedServer

PARTITIONS = 8


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    external = os.environ.get("TIMELINE_TEST_REDIS_URL")
    if external:
        yield external
        return
    with tempfile.TemporaryDirectory(prefix="timeline-test-") as data_dir:
        server = EmbeddedServer(Path(data_dir))
        url = server.start()
        try:
            yield url
        finally:
            server.stop()


@pytest.fixture
def redis_url(server_url: str) -> str:
    """The test server, emptied."""
    client = redis.Redis.from_url(server_url)
    client.flushdb()
    client.close()
    return server_url


@pytest.fixture
def settings(redis_url: str) -> config.Settings:
    return config.load({"TIMELINE_REDIS_URL": redis_url,
                        "TIMELINE_PARTITIONS": str(PARTITIONS)})


@pytest.fixture
async def services(settings: config.Settings) -> AsyncIterator[bootstrap.Services]:
    assert settings.redis_url
    built = await bootstrap.connect(settings, settings.redis_url)
    try:
        yield built
    finally:
        await built.client.aclose()


@pytest.fixture
def sync_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()
