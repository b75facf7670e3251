"""The embedded server (DESIGN 2, "Embedded default"): AOF on, loopback only,
found through the data dir, durable across restarts, gone with its parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from services.redis.embedded import (
    PID_FILE,
    URL_FILE,
    EmbeddedServer,
    allocator,
    jemalloc_library,
    running_url,
    server_environment,
)

ROOT = Path(__file__).resolve().parents[2]


def alive(pid: int) -> bool:
    """Whether `pid` is a running process. A zombie (exited, not yet reaped by
    whoever inherited it) counts as gone: it holds no port and no file."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def config_get(client: redis.Redis, name: str) -> str:
    value = client.config_get(name)[name]
    return value.decode() if isinstance(value, bytes) else str(value)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedServer]:
    embedded = EmbeddedServer(tmp_path / "data")
    embedded.start()
    yield embedded
    embedded.stop()


@pytest.fixture
def client(server: EmbeddedServer) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(server.url, decode_responses=True)
    yield connection
    connection.close()


def test_append_only_file_is_on(server: EmbeddedServer, client: redis.Redis) -> None:
    assert config_get(client, "appendonly") == "yes"
    assert config_get(client, "appendfsync") == "everysec"
    assert config_get(client, "dir") == str(server.data_dir)
    client.set("k", "v")
    assert (server.data_dir / "appendonlydir").is_dir()


def test_the_server_allocates_with_jemalloc_when_it_is_installed(
    server: EmbeddedServer, client: redis.Redis,
) -> None:
    if jemalloc_library() is None:
        pytest.skip("libjemalloc2 is not installed: the server runs on glibc's malloc")
    assert server.process is not None
    assert allocator(server.process.pid) == "jemalloc"
    client.set("k", "v" * 1000)  # it serves with the preloaded allocator
    assert client.get("k") == "v" * 1000


def test_jemalloc_goes_ahead_of_what_the_caller_preloads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("services.redis.embedded.jemalloc_library", lambda: "libjemalloc.so.2")
    monkeypatch.setenv("LD_PRELOAD", "libother.so")
    assert server_environment()["LD_PRELOAD"] == "libjemalloc.so.2 libother.so"
    monkeypatch.delenv("LD_PRELOAD")
    assert server_environment()["LD_PRELOAD"] == "libjemalloc.so.2"


def test_without_jemalloc_the_server_starts_as_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("services.redis.embedded.jemalloc_library", lambda: None)
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    assert "LD_PRELOAD" not in server_environment()
    bare = EmbeddedServer(tmp_path / "data")
    bare.start()
    try:
        assert bare.process is not None
        assert allocator(bare.process.pid) == "libc"
        with redis.Redis.from_url(bare.url) as connection:
            assert connection.ping()
    finally:
        bare.stop()


def test_fsync_always(tmp_path: Path) -> None:
    embedded = EmbeddedServer(tmp_path / "data", fsync="always")
    embedded.start()
    try:
        with redis.Redis.from_url(embedded.url, decode_responses=True) as connection:
            assert config_get(connection, "appendonly") == "yes"
            assert config_get(connection, "appendfsync") == "always"
    finally:
        embedded.stop()


def test_bound_to_loopback_only(server: EmbeddedServer, client: redis.Redis) -> None:
    assert config_get(client, "bind").split() == ["127.0.0.1"]
    assert config_get(client, "protected-mode") == "yes"
    assert server.url.startswith("redis://127.0.0.1:")


def test_url_and_pid_files_let_other_commands_find_it(server: EmbeddedServer) -> None:
    assert server.process is not None
    assert (server.data_dir / URL_FILE).read_text().strip() == server.url
    assert int((server.data_dir / PID_FILE).read_text()) == server.process.pid
    assert running_url(server.data_dir) == server.url


def test_stop_removes_the_files_and_running_url_forgets_it(tmp_path: Path) -> None:
    embedded = EmbeddedServer(tmp_path / "data")
    embedded.start()
    assert embedded.process is not None
    pid = embedded.process.pid
    embedded.stop()
    assert not alive(pid)
    assert not (embedded.data_dir / URL_FILE).exists()
    assert not (embedded.data_dir / PID_FILE).exists()
    assert running_url(embedded.data_dir) is None


def test_running_url_ignores_a_stale_pid_file(tmp_path: Path, server: EmbeddedServer) -> None:
    """Files left by a killed server do not point commands at its port, even when
    another server (another data directory's) answers there now."""
    data = tmp_path / "stale"
    data.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (data / URL_FILE).write_text(server.url)
    (data / PID_FILE).write_text(str(dead.pid))
    assert running_url(data) is None
    (data / URL_FILE).write_text("redis://127.0.0.1:1/0")
    (data / PID_FILE).write_text(str(os.getpid()))  # alive, but nothing answers the URL
    assert running_url(data) is None
    assert running_url(tmp_path / "nowhere") is None


def test_data_survives_stop_and_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = EmbeddedServer(data)
    first.start()
    try:
        with redis.Redis.from_url(first.url) as connection:
            connection.set("durable", "yes")
            connection.xadd("stream", {"f": "v"})
    finally:
        first.stop()
    second = EmbeddedServer(data)
    second.start()
    try:
        with redis.Redis.from_url(second.url, decode_responses=True) as connection:
            assert connection.get("durable") == "yes"
            assert connection.xlen("stream") == 1
    finally:
        second.stop()


PARENT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from services.redis.embedded import EmbeddedServer

    server = EmbeddedServer(Path(sys.argv[1]))
    server.start()
    print(server.process.pid, flush=True)
    time.sleep(120)
""")


def test_server_dies_with_its_parent(tmp_path: Path) -> None:
    data = tmp_path / "data"
    pid = 0
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(data)], cwd=ROOT,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        assert line.strip().isdigit(), f"parent printed {line!r}, exit {parent.poll()}"
        pid = int(line)
        assert alive(pid)
        assert running_url(data) is not None
        parent.send_signal(signal.SIGKILL)  # no cleanup code runs: only the kernel can stop it
        assert parent.wait(5) == -signal.SIGKILL
        deadline = time.monotonic() + 5
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(pid), "the embedded server outlived its parent"
        assert running_url(data) is None
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
        if pid and alive(pid):  # never leak a server, even when the test fails
            os.kill(pid, signal.SIGKILL)


def test_commands_started_together_share_one_server(tmp_path: Path) -> None:
    """Two resolve_url calls racing on one data dir must not start two servers."""
    import concurrent.futures

    from services import config
    from services.redis.connection import resolve_url

    settings = config.load({"TIMELINE_DATA_DIR": str(tmp_path / "data")})
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(lambda _: resolve_url(settings), range(2)))
    servers = [server for _, server in outcomes if server is not None]
    try:
        assert len(servers) == 1
        assert outcomes[0][0] == outcomes[1][0]
    finally:
        for server in servers:
            server.stop()
