from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests import processes
from tests.conftest import is_cluster_url


@pytest.fixture(scope="session")
def logs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def api_process(server_url: str, logs_dir: Path) -> Iterator[processes.Api]:
    """One real `timeline api` process for the session (tests empty the db, not it)."""
    if not is_cluster_url(server_url):  # a log left with another partition count refuses it
        with redis.Redis.from_url(server_url) as client:
            client.flushdb()
    api = processes.Api(server_url, logs_dir / "api.log")
    yield api
    processes.stop(api.process)


@pytest.fixture
def http(api_process: processes.Api, redis_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_process.base, timeout=30) as client:
        yield client


@pytest.fixture
def worker(redis_url: str, logs_dir: Path) -> Iterator[object]:
    """One real `timeline worker` process for this test."""
    process = processes.start(["worker"], processes.env_for(redis_url), logs_dir / "worker.log")
    yield process
    processes.stop(process)
