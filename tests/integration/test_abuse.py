"""Abusive clients against a real `timeline api` process, over raw sockets:
clients that hang up mid-request, clients that trickle their body or stall
half-way (cut off with 408) while others publish, and malformed HTTP. The server must stay up, write
nothing for a request it did not read whole, keep serving everyone else, and
afterwards the log must hold exactly the events acknowledged with 200.
The figures go to docs/reliability.md."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest
import redis

from services.http.bodies import BODY_IDLE_SECONDS
from services.log import keys
from tests import processes, reliability_report
from tests.conftest import PARTITIONS

Figures = dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def figures() -> Iterator[Figures]:
    found: Figures = {}
    yield found
    if found:
        reliability_report.record("tests/integration/test_abuse.py", found)


def batch(tag: str, size: int = 10) -> list[dict[str, Any]]:
    return [{"specversion": "1.0", "id": f"{tag}-{n}", "source": "urn:test:abuse",
             "subject": f"org-{n % 7}", "type": "x-test.noted", "occurred": "2024-03",
             "data": {"n": n, "pad": "x" * 200}} for n in range(size)]


def request_bytes(port: int, events: Any, path: str = "/v1/events") -> tuple[bytes, bytes]:
    body = msgspec.json.encode(events)
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    return head, body


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def read_status(sock: socket.socket) -> int | None:
    """The status of the answer, None when the server closed without one."""
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return None
        data += chunk
    return int(data.split(b" ", 2)[1])


def log_length(client: redis.Redis) -> int:
    return sum(int(client.xlen(keys.log(p))) for p in range(PARTITIONS))


def stored_ids(client: redis.Redis) -> set[str]:
    found = set()
    for p in range(PARTITIONS):
        for _, fields in client.xrange(keys.log(p)):
            found.add(msgspec.json.decode(fields[b"event"])["id"])
    return found


class Tally:
    """Events acknowledged with 200, to compare with the log at the end."""

    def __init__(self) -> None:
        self.acked: set[str] = set()
        self.lock = threading.Lock()

    def publish(self, client: httpx.Client, events: list[dict[str, Any]]) -> httpx.Response:
        answer = client.post("/v1/events", json=events)
        if answer.status_code == 200:
            with self.lock:
                self.acked.update(e["id"] for e in events)
        return answer


def publish_statuses(http: httpx.Client) -> dict[str, int]:
    """Requests to POST /v1/events by status, from the server's own /metrics."""
    found: dict[str, int] = {}
    for line in http.get("/metrics").text.splitlines():
        match = re.match(r'timeline_http_request_duration_seconds_count\{(.*)\} (\S+)', line)
        if match and 'method="POST"' in match[1] and 'route="/v1/events"' in match[1]:
            status = re.search(r'status="(\d+)"', match[1])
            assert status is not None
            found[status[1]] = int(float(match[2]))
    return found


def assert_alive(http: httpx.Client, tally: Tally, tag: str) -> None:
    assert http.get("/healthz").status_code == 200
    assert tally.publish(http, batch(tag, 3)).status_code == 200


def test_clients_that_hang_up_mid_request(
    api_process: processes.Api, http: httpx.Client, sync_redis: redis.Redis, figures: Figures
) -> None:
    port, tally = api_process.port, Tally()
    cuts = 0
    before = publish_statuses(http)
    for round_ in range(10):
        head, body = request_bytes(port, batch(f"cut{round_}", 50))
        for cut in (0, len(body) // 2, len(body) - 1):  # headers only, half, all but a byte
            for reset in (False, True):  # a polite FIN, or a RST (SO_LINGER 0)
                sock = connect(port)
                if reset:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                    b"\x01\x00\x00\x00\x00\x00\x00\x00")
                sock.sendall(head + body[:cut])
                time.sleep(0.01)
                sock.close()
                cuts += 1
        assert_alive(http, tally, f"alive{round_}")
    after = publish_statuses(http)
    # Every hang-up is counted as 499 (client closed request), none as a server error.
    assert after.get("499", 0) - before.get("499", 0) == cuts, (before, after)
    assert not any(status.startswith("5") for status in after), after
    # A client that sent everything and left before the answer: the request was
    # whole, so it is appended (once); its re-send is answered `duplicate`.
    head, body = request_bytes(port, batch("whole", 5))
    sock = connect(port)
    sock.sendall(head + body)
    sock.close()
    deadline = time.monotonic() + 10
    while not {f"whole-{n}" for n in range(5)} <= stored_ids(sync_redis):
        assert time.monotonic() < deadline, "a whole request whose client left was not kept"
        time.sleep(0.05)
    resend = tally.publish(http, batch("whole", 5))
    assert [r["status"] for r in resend.json()["results"]] == ["duplicate"] * 5

    stored = stored_ids(sync_redis)
    assert not any(i.startswith("cut") for i in stored), "a half-read request was written"
    assert stored == tally.acked and log_length(sync_redis) == len(tally.acked)
    assert api_process.process.poll() is None
    figures["Clients that hang up mid-request (POST /v1/events, raw sockets)"] = {
        "disconnects survived (after the headers, half the body, all but one byte; "
        "FIN and RST)": cuts,
        "events written for those requests": 0,
        "counted by the server as 499 (client closed request) / as 5xx": f"{cuts} / 0",
        "a whole request whose client left before the answer": "appended once; re-send "
                                                                "answered duplicate",
        "events acknowledged (200) / events in the log": f"{len(tally.acked)} / "
                                                         f"{log_length(sync_redis)}",
    }


class SlowClient(threading.Thread):
    """Sends one batch a few bytes at a time over `seconds`, then reads the answer."""

    def __init__(self, port: int, events: Any, seconds: float, stall: bool = False,
                 path: str = "/v1/events") -> None:
        super().__init__(daemon=True)
        self.head, self.body = request_bytes(port, events, path)
        self.port, self.seconds, self.stall = port, seconds, stall
        self.status: int | None = None
        self.waited = 0.0  # from the last byte sent to the answer
        self.sock = connect(port)
        self.sock.settimeout(30)

    def run(self) -> None:
        steps = 30
        piece = -(-len(self.body) // steps)
        self.sock.sendall(self.head)
        for n in range(steps):
            if self.stall and n == steps // 2:
                break  # half a body, then silence with the connection open
            self.sock.sendall(self.body[n * piece:(n + 1) * piece])
            time.sleep(self.seconds / steps)
        silent_since = time.monotonic()
        self.status = read_status(self.sock)
        self.waited = time.monotonic() - silent_since
        self.sock.close()


def test_slow_and_stalled_clients_block_nobody(
    api_process: processes.Api, http: httpx.Client, sync_redis: redis.Redis, figures: Figures
) -> None:
    port, tally = api_process.port, Tally()
    trickling = [SlowClient(port, batch(f"slow{n}", 20), seconds=3) for n in range(3)]
    stalled = [SlowClient(port, batch(f"stall{n}", 20), seconds=1, stall=True)
               for n in range(3)]
    # The other route that reads a body: a saved digest to verify the log against.
    stalled.append(SlowClient(port, {"partitions": {str(p): {} for p in range(50)}},
                              seconds=1, stall=True, path="/v1/audit/verify"))
    slowest = 0.0
    published = 0
    for client in trickling + stalled:
        client.start()
    started = time.monotonic()
    with httpx.Client(base_url=api_process.base, timeout=10) as other:
        while any(c.is_alive() for c in trickling + stalled):
            began = time.monotonic()
            assert tally.publish(other, batch(f"fast{published}", 10)).status_code == 200
            slowest = max(slowest, time.monotonic() - began)
            published += 1
            time.sleep(0.02)
    took = time.monotonic() - started
    for client in trickling:
        client.join(10)
        assert client.status == 200, "a slow but complete request is served"
    tally.acked.update(e["id"] for n in range(3) for e in batch(f"slow{n}", 20))
    assert took >= 2.5 and published >= 20, (took, published)
    assert slowest < 1.0, f"a normal publish took {slowest:.2f}s while others trickled"

    # The stalled ones are cut off once their body stops arriving, and nothing of
    # them is written.
    for client in stalled:
        client.join(10)
        assert client.status == 408, "a stalled body is answered 408"
        assert BODY_IDLE_SECONDS - 0.5 <= client.waited <= BODY_IDLE_SECONDS + 3, client.waited
    assert not any(i.startswith("stall") for i in stored_ids(sync_redis))
    assert_alive(http, tally, "after-stall")
    assert stored_ids(sync_redis) == tally.acked
    assert log_length(sync_redis) == len(tally.acked)
    figures["Slow and stalled clients while others publish"] = {
        "clients trickling a 20-event batch over 3 s (all answered 200)": len(trickling),
        "clients stalled after half a body (all answered 408, nothing written)": len(stalled),
        "stalled clients cut off after (body idle timeout "
        f"{BODY_IDLE_SECONDS:g} s)": f"{max(c.waited for c in stalled):.1f} s at most",
        "normal publishes meanwhile (all 200)": published,
        "slowest normal publish meanwhile": f"{slowest * 1000:.0f} ms",
        "events acknowledged (200) / events in the log": f"{len(tally.acked)} / "
                                                         f"{log_length(sync_redis)}",
    }


def malformed(port: int) -> dict[str, bytes]:
    head, body = request_bytes(port, batch("bad", 2))
    host = f"Host: 127.0.0.1:{port}\r\n".encode()
    return {
        "garbage request line": b"HELLO THERE\r\n\r\n",
        "binary noise": bytes(range(256)) * 4 + b"\r\n\r\n",
        "TLS handshake on the plain port": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" * 8,
        "HTTP/2 preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "header without a colon": b"GET /healthz HTTP/1.1\r\n" + host + b"oops\r\n\r\n",
        "NUL in a header": b"GET /healthz HTTP/1.1\r\n" + host + b"X-A: a\x00b\r\n\r\n",
        "non-numeric Content-Length": head.replace(b"Content-Length: ", b"Content-Length: x"),
        "two different Content-Lengths": head.replace(b"\r\n\r\n", b"\r\nContent-Length: 3"
                                                      b"\r\n\r\n") + body,
        "bad chunk size": b"POST /v1/events HTTP/1.1\r\n" + host
                          + b"Content-Type: application/json\r\nTransfer-Encoding: chunked"
                            b"\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
        "Content-Length and chunked together": head.replace(
            b"\r\n\r\n", b"\r\nTransfer-Encoding: chunked\r\n\r\n") + body,
        "100 MB Content-Length, no body": head.replace(
            f"Content-Length: {len(body)}".encode(), b"Content-Length: 100000000"),
        "unknown method": b"BREW /v1/events HTTP/1.1\r\n" + host + b"\r\n",
        "HTTP/0.9-style request": b"GET /\r\n\r\n",
    }


def test_malformed_http_gets_4xx_or_a_closed_connection(
    api_process: processes.Api, http: httpx.Client, sync_redis: redis.Redis, figures: Figures
) -> None:
    port, tally = api_process.port, Tally()
    answers: dict[str, str] = {}
    for name, raw in malformed(port).items():
        sock = connect(port)
        sock.settimeout(5)  # under the API's 10 s for a body: no answer by then fails
        try:
            sock.sendall(raw)
            try:
                status = read_status(sock)
            except ConnectionResetError:
                status = None
        finally:
            sock.close()
        # httptools (uvicorn's parser) reads "GET /" as HTTP/0.9's form of a GET and
        # serves it: a read, so a page, not an error, is a fine answer to that one.
        read_only = name == "HTTP/0.9-style request" and status == 200
        assert status is None or 400 <= status < 500 or read_only, (name, status)
        if name == "100 MB Content-Length, no body":
            assert status == 413, status  # refused by its length, not waited for
        answers[name] = "closed" if status is None else str(status)
        assert_alive(http, tally, f"ok-{len(answers)}")
    assert not any(i.startswith("bad") for i in stored_ids(sync_redis))
    assert stored_ids(sync_redis) == tally.acked
    assert log_length(sync_redis) == len(tally.acked)
    assert api_process.process.poll() is None
    figures["Malformed HTTP (raw sockets), a publish after each"] = {
        "malformed requests sent / server still up": f"{len(answers)} / yes",
        **{f"{name}": f"answered {status}" if status != "closed" else "connection closed"
           for name, status in answers.items()},
        "events written by them": 0,
        "events acknowledged (200) / events in the log": f"{len(tally.acked)} / "
                                                         f"{log_length(sync_redis)}",
    }
