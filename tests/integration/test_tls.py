"""`rediss://`: the API and a worker talk to the server through a real TLS hop.

The embedded Valkey build has no TLS, so a small TLS terminator (the test's
own, in a thread) stands in front of it, as stunnel or a cloud proxy would.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.redis.embedded import free_port
from tests import processes

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl binary")


def make_certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return cert, key


class TlsTerminator:
    """Accepts TLS on `port` and relays plain bytes to the real server."""

    def __init__(self, cert: Path, key: Path, upstream_port: int) -> None:
        self.port = free_port()
        self.upstream_port = upstream_port
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(
            self._relay, "127.0.0.1", self.port, ssl=self.context))
        self.ready.set()
        self.loop.run_forever()
        server.close()
        pending = asyncio.all_tasks(self.loop)
        for task in pending:
            task.cancel()
        self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.run_until_complete(server.wait_closed())
        self.loop.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while chunk := await src.read(65536):
                    dst.write(chunk)
                    await dst.drain()
            except (ConnectionError, ssl.SSLError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    def __enter__(self) -> TlsTerminator:
        self.thread.start()
        self.ready.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def tls_url(redis_url: str, tmp_path: Path) -> Iterator[str]:
    cert, key = make_certificate(tmp_path)
    upstream = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    with TlsTerminator(cert, key, upstream) as terminator:
        yield f"rediss://127.0.0.1:{terminator.port}/0?ssl_ca_certs={cert}"


def test_api_and_worker_over_tls(tls_url: str, tmp_path: Path) -> None:
    env = processes.env_for(tls_url)
    port = free_port()
    api = processes.start(["api", "--port", str(port)], env, tmp_path / "api.log")
    worker = processes.start(["worker"], env, tmp_path / "worker.log")
    try:
        base = f"http://127.0.0.1:{port}"
        processes.wait_http(base, "/readyz", process=api)
        event = {"specversion": "1.0", "id": "tls-1", "source": "urn:test", "type": "mou.signed",
                 "subject": "lg", "occurred": "2024-01",
                 "data": {"parties": [{"id": "lg"}, {"id": "jax"}]}}
        published = httpx.post(base + "/v1/events", json=event, timeout=30)
        assert published.status_code == 200, published.text
        token = published.json()["position"]
        page = httpx.get(base + "/v1/timelines/pair/jax/lg", params={"min_position": token},
                         timeout=30)
        assert page.status_code == 200, page.text
        assert [e["id"] for e in page.json()["entries"]] == ["tls-1"]
    finally:
        processes.stop(worker)
        processes.stop(api)

