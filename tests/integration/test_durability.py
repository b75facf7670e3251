"""Durability at start (AOF check of an external server) and readiness across
a server outage, against real servers of our own in temporary directories."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from structlog.testing import capture_logs

from services import bootstrap, config
from services.redis.embedded import EmbeddedServer, free_port
from tests import processes


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[EmbeddedServer]:
    server = EmbeddedServer(tmp_path / "data")
    server.start()
    yield server
    server.stop()


async def connect_and_capture(url: str) -> list[dict[str, object]]:
    settings = config.load({"TIMELINE_REDIS_URL": url})
    with capture_logs() as logs:
        built = await bootstrap.connect(settings, url)
        await built.client.aclose()
    return logs


def wait_for_rewrite(admin: redis.Redis) -> None:
    """Turning AOF back on starts a rewrite; a server stopped during it lingers."""
    while any(int(admin.info("persistence")[k]) for k in (
            "aof_rewrite_in_progress", "aof_rewrite_scheduled")):
        time.sleep(0.05)


async def test_an_external_server_without_aof_is_warned_about(
    own_server: EmbeddedServer
) -> None:
    admin = redis.Redis.from_url(own_server.url)
    try:
        assert [e for e in await connect_and_capture(own_server.url)
                if e["log_level"] == "warning"] == []
        admin.config_set("appendonly", "no")
        [warning] = await connect_and_capture(own_server.url)
        assert warning["log_level"] == "warning"
        assert "DURABILITY WARNING" in str(warning["event"]) and "appendonly=no" in str(
            warning["event"])
        admin.config_set("appendonly", "yes")
        admin.config_set("appendfsync", "no")
        [warning] = await connect_and_capture(own_server.url)
        assert "appendfsync=no" in str(warning["event"])
    finally:
        admin.config_set("appendfsync", "everysec")
        wait_for_rewrite(admin)
        admin.close()


async def test_a_server_refusing_config_is_tolerated(own_server: EmbeddedServer) -> None:
    admin = redis.Redis.from_url(own_server.url)
    admin.acl_setuser("app", enabled=True, passwords=["+app-pw"], keys=["*"], channels=["*"],
                      commands=["+@all", "-config"])
    admin.close()
    url = f"redis://app:app-pw@127.0.0.1:{own_server.port}/0"
    [warning] = await connect_and_capture(url)
    assert "CONFIG refused" in str(warning["event"])


def ready(base: str) -> int:
    try:
        return httpx.get(base + "/readyz", timeout=15).status_code
    except httpx.HTTPError:
        return -1


def wait_ready(base: str, want: int, within: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within:
        if ready(base) == want:
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"/readyz did not answer {want} within {within}s")


def projected(base: str, position: str, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        answer = httpx.get(base + "/v1/timelines/all", params={"min_position": position},
                           timeout=15)
        if answer.status_code == 200:
            return
        time.sleep(0.2)
    raise AssertionError(f"{position} not projected within {within}s")


def test_readiness_follows_the_server_and_api_and_worker_recover_without_restart(
    tmp_path: Path
) -> None:
    data = tmp_path / "data"
    server = EmbeddedServer(data)
    server.start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    api = processes.start(["api", "--port", str(port)], processes.env_for(server.url),
                          tmp_path / "api.log")
    worker = processes.start(["worker"], processes.env_for(server.url), tmp_path / "worker.log")
    try:
        processes.wait_http(base, process=api)
        wait_ready(base, 200, 10)
        event = {"specversion": "1.0", "id": "kept", "source": "urn:test:dur", "type": "x-a.b",
                 "subject": "lg", "occurred": "2024", "data": {}}
        first = httpx.post(base + "/v1/events", json=event, timeout=15)
        assert first.status_code == 200
        projected(base, first.json()["position"], 20)

        server.stop()
        wait_ready(base, 503, 20)
        assert httpx.get(base + "/healthz", timeout=5).status_code == 200
        assert api.poll() is None, "the API must not die with its server"
        time.sleep(1)
        assert worker.poll() is None, "nor the worker"
        body = httpx.get(base + "/readyz", timeout=15).json()
        assert body == {"ready": False, "reason": "server unreachable"}  # no address, errno
        refused = httpx.post(base + "/v1/events", json={**event, "id": "while-down"},
                             timeout=30)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert refused.json()["message"] == ("the log could not be written now; "
                                             "retrying the same request is safe")
        for path in ("/v1/timelines/entity/lg", "/v1/entities?prefix=l",
                     "/v1/events?source=s&id=i"):
            down = httpx.get(base + path, timeout=15)  # a read to retry, not a server bug
            assert (down.status_code, down.json()["error"]) == (503, "unavailable"), path
            assert down.headers["retry-after"] == "1"

        again = EmbeddedServer(data, port=server.port)  # same data dir: AOF brings it back
        again.start()
        try:
            wait_ready(base, 200, 20)
            resent = httpx.post(base + "/v1/events", json=event, timeout=15)
            assert resent.status_code == 200
            assert resent.json()["results"][0]["status"] == "duplicate"
            later = httpx.post(base + "/v1/events", json={**event, "id": "later"}, timeout=15)
            assert later.status_code == 200
            projected(base, later.json()["position"], 30)  # the same worker, recovered
            assert worker.poll() is None
        finally:
            assert processes.stop(worker) == 0
            assert processes.stop(api) == 0
            again.stop()
    finally:
        processes.stop(worker)
        processes.stop(api)
        server.stop()
