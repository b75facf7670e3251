"""Live updates: GET /v1/live (SSE) and `timeline tail`, against a real API process,
a real worker process and the real server."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from projections.live import LIVE, MAXLEN
from tests import processes
from tests.conftest import is_cluster_url
from tests.factory import ref

pytestmark = pytest.mark.usefixtures("worker")
SOURCE = "urn:test:live"


def mou(ident: str, a: str, b: str, topics: tuple[str, ...] = ()) -> dict[str, Any]:
    data: dict[str, Any] = {"parties": [ref(a), ref(b)]}
    if topics:
        data["topics"] = list(topics)
    return {"specversion": "1.0", "id": ident, "source": SOURCE, "type": "mou.signed",
            "subject": a, "occurred": "2024-03?", "data": data}


def publish(http: httpx.Client, *events: dict[str, Any]) -> str:
    response = http.post("/v1/events", json=list(events))
    assert response.status_code == 200, response.text
    return str(response.json()["position"])


def wait_applied(http: httpx.Client, position: str) -> None:
    """Read-your-writes through the API: returns once the worker applied `position`."""
    response = http.get("/v1/timelines/all", params={"min_position": position, "limit": 1})
    assert response.status_code == 200, response.text


class Sse:
    """A minimal SSE reader over an httpx stream: events and comments, in order."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.iter_lines()
        self.connected: dict[str, str] = {}

    def next(self, within: float = 15.0) -> dict[str, str]:
        deadline = time.monotonic() + within
        fields: dict[str, str] = {}
        for line in self.lines:
            if time.monotonic() > deadline:
                break
            if line == "":
                if fields:
                    return fields
                continue
            name, _, value = line.partition(":")
            name = name or "comment"
            value = value.removeprefix(" ")
            fields[name] = fields[name] + "\n" + value if name in fields else value
        raise TimeoutError("no SSE event in time")

    def entries(self, count: int, within: float = 15.0) -> list[dict[str, str]]:
        found: list[dict[str, str]] = []
        deadline = time.monotonic() + within
        while len(found) < count:
            event = self.next(max(0.1, deadline - time.monotonic()))
            if event.get("event") == "entry":
                found.append(event)
        return found


@contextmanager
def live(http: httpx.Client, params: dict[str, str] | None = None,
         last_id: str | None = None) -> Iterator[Sse]:
    headers = {"Last-Event-ID": last_id} if last_id is not None else {}
    with http.stream("GET", "/v1/live", params={"keepalive": "1", **(params or {})},
                     headers=headers, timeout=httpx.Timeout(10, read=5)) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = Sse(response)
        stream.connected = stream.next()
        assert stream.connected.get("comment") == "connected"
        yield stream


def entry_of(event: dict[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(event["data"])
    return body


def test_a_connected_client_receives_what_is_applied(http: httpx.Client) -> None:
    with live(http) as stream:
        publish(http, mou("live-1", "org-a", "org-b", ("ai",)))
        event = stream.entries(1)[0]
    body = entry_of(event)
    assert body["entry"]["id"] == "live-1"
    assert body["entry"]["headline"]
    assert {"all", "entity:org-a", "entity:org-b", "pair:org-a:org-b",
            "topic:ai"} <= set(body["timelines"])
    assert event["id"] and event["id"] != "0-0"


def test_reconnect_with_last_event_id_gets_what_it_missed(http: httpx.Client) -> None:
    with live(http) as stream:
        publish(http, mou("seen", "org-a", "org-b"))
        seen = stream.entries(1)[0]
    wait_applied(http, publish(http, mou("missed-1", "org-a", "org-c")))
    wait_applied(http, publish(http, mou("missed-2", "org-a", "org-d")))
    with live(http, last_id=seen["id"]) as stream:
        first = stream.next()
        assert first.get("event") == "entry"  # and no "reset": nothing was trimmed
        second = stream.entries(1)[0]
        publish(http, mou("after", "org-a", "org-e"))
        third = stream.entries(1)[0]
    assert [entry_of(e)["entry"]["id"] for e in (first, second, third)] == [
        "missed-1", "missed-2", "after"]
    assert seen["id"] < first["id"] < second["id"] < third["id"]


def test_entity_and_topic_filters(http: httpx.Client) -> None:
    with live(http, {"entity": "org-x"}) as by_entity, live(http, {"topic": "bio"}) as by_topic:
        publish(http, mou("other", "org-y", "org-z", ("bio",)))
        publish(http, mou("mine", "org-x", "org-y"))
        publish(http, mou("both", "org-x", "org-w", ("bio",)))
        entity_ids = [entry_of(e)["entry"]["id"] for e in by_entity.entries(2)]
        topic_ids = [entry_of(e)["entry"]["id"] for e in by_topic.entries(2)]
    assert entity_ids == ["mine", "both"]  # one subject, one partition: in log order
    assert sorted(topic_ids) == ["both", "other"]  # two partitions: no order between them


def test_a_correction_arrives_as_the_corrected_entry(http: httpx.Client) -> None:
    with live(http, {"entity": "org-k"}) as stream:
        publish(http, mou("to-fix", "org-k", "org-l"))
        original = entry_of(stream.entries(1)[0])["entry"]
        publish(http, {"specversion": "1.0", "id": "fix-1", "source": SOURCE,
                       "type": "event.corrected", "subject": "org-k", "occurred": "2024-04-01",
                       "data": {"target": "to-fix", "reason": "month was wrong",
                                "occurred": "2024-05"}})
        corrected = entry_of(stream.entries(1)[0])["entry"]
    assert (original["status"], original["version"]) == ("active", 1)
    assert (corrected["id"], corrected["status"], corrected["version"]) == (
        "to-fix", "corrected", 2)
    assert corrected["occurred"] == "2024-05"


def test_a_correction_that_takes_an_entry_off_a_timeline_reaches_its_followers(
    http: httpx.Client,
) -> None:
    with live(http, {"entity": "org-n"}) as stream:
        publish(http, mou("wrong-party", "org-m", "org-n"))
        assert entry_of(stream.entries(1)[0])["entry"]["id"] == "wrong-party"
        publish(http, {"specversion": "1.0", "id": "fix-party", "source": SOURCE,
                       "type": "event.corrected", "subject": "org-m", "occurred": "2024-04-01",
                       "data": {"target": "wrong-party", "reason": "org-o signed, not org-n",
                                "data": mou("x", "org-m", "org-o")["data"]}})
        moved = entry_of(stream.entries(1)[0])
    assert (moved["entry"]["id"], moved["entry"]["status"]) == ("wrong-party", "corrected")
    assert "entity:org-n" not in moved["timelines"] and "entity:org-o" in moved["timelines"]
    assert set(moved["left"]) == {"entity:org-n", "pair:org-m:org-n"}


def test_keep_alive_comments_carry_the_position(http: httpx.Client) -> None:
    with live(http, {"entity": "nobody"}) as stream:
        wait_applied(http, publish(http, mou("skipped", "org-a", "org-b")))
        # Keep-alives sent while the publish was still on its way (one a second here,
        # and a slow machine takes longer than that) rightly say 0-0; a later one may not.
        deadline = time.monotonic() + 5
        events = [stream.next(within=5)]
        while events[-1].get("id") == "0-0" and time.monotonic() < deadline:
            events.append(stream.next(within=max(0.1, deadline - time.monotonic())))
    assert {event.get("comment") for event in events} == {"keep-alive"}
    assert not any("data" in event for event in events)  # comments, not empty messages
    assert events[-1]["id"] != "0-0"  # moved past the entry the filter skipped


def wait_live(sync_redis: redis.Redis, position: str, http: httpx.Client) -> None:
    wait_applied(http, position)
    deadline = time.monotonic() + 15
    while not sync_redis.xlen(LIVE):  # the feed is written just after the position
        assert time.monotonic() < deadline, "nothing on the live stream"
        time.sleep(0.05)


def test_a_client_that_left_before_any_entry_resumes_from_its_connection(
    http: httpx.Client,
) -> None:
    """The first message carries the position: a drop in the first seconds (before any
    entry or keep-alive) lost what was published meanwhile, reconnecting from "now"."""
    with live(http, {"entity": "org-gap"}) as stream:
        connected = stream.connected["id"]
    wait_applied(http, publish(http, mou("gap-1", "org-gap", "org-b")))
    with live(http, {"entity": "org-gap"}, last_id=connected) as stream:
        assert entry_of(stream.entries(1)[0])["entry"]["id"] == "gap-1"


def test_an_entry_the_stream_cannot_read_is_skipped(
    http: httpx.Client, sync_redis: redis.Redis
) -> None:
    """One such entry (a worker of another version, say) ended every stream reaching it."""
    wait_live(sync_redis, publish(http, mou("before", "org-a", "org-b")), http)
    last = sync_redis.xrevrange(LIVE, count=1)[0][0].decode()
    sync_redis.xadd(LIVE, {"entry": '{"bogus": 1}', "timelines": "[]"})
    publish(http, mou("after-bogus", "org-a", "org-b"))
    with live(http, last_id=last) as stream:
        assert entry_of(stream.entries(1)[0])["entry"]["id"] == "after-bogus"


def test_a_trimmed_gap_is_announced(http: httpx.Client, sync_redis: redis.Redis) -> None:
    with live(http) as stream:
        publish(http, mou("old", "org-a", "org-b"))
        old = stream.entries(1)[0]
    publish(http, mou("gone", "org-a", "org-c"))
    deadline = time.monotonic() + 15
    while b'"gone"' not in b"".join(f[b"entry"] for _, f in sync_redis.xrange(LIVE)):
        assert time.monotonic() < deadline, "the worker never published the entry"
        time.sleep(0.05)
    sync_redis.xtrim(LIVE, maxlen=0)
    wait_live(sync_redis, publish(http, mou("fresh", "org-a", "org-d")), http)
    with live(http, last_id=old["id"]) as stream:
        event = stream.next()
        after = stream.next()
    assert event["event"] == "reset"
    # One reset for the one gap: the first read, past it, said it again.
    assert after.get("event") == "entry" and entry_of(after)["entry"]["id"] == "fresh"
    # a client that had seen nothing (connected to an empty stream) missed them too
    with live(http, last_id="0-0") as stream:
        event = stream.next()
    assert event["event"] == "reset"


def test_a_connected_client_that_falls_behind_the_cap_is_told_to_reset(
    http: httpx.Client, sync_redis: redis.Redis, redis_url: str
) -> None:
    """A client reading slower than entries arrive (here: not at all, with a tiny
    receive window) falls behind the ~10,000 entries the stream keeps while still
    connected: each gap in what it gets is announced by `event: reset`. On the single
    server only: a cluster changes nothing in the API's loop (test_live_feed checks the
    reader's trim check on both), and the test is among the longest."""
    if is_cluster_url(redis_url):
        pytest.skip("the same on a cluster; see the docstring")
    publish(http, mou("template", "org-a", "org-b"))
    template = wait_on_feed(sync_redis, "template")
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((http.base_url.host, int(http.base_url.port or 80)))
        sock.sendall(b"GET /v1/live?keepalive=300 HTTP/1.1\r\nHost: api\r\n"
                     b"Accept: text/event-stream\r\n\r\n")
        received = sock.recv(4096)
        while b": connected" not in received:
            received += sock.recv(4096)
        copies = 2 * MAXLEN
        for start in range(0, copies, 1000):  # as the worker publishes, capped
            with sync_redis.pipeline(transaction=False) as pipe:
                for n in range(start, start + 1000):
                    pipe.xadd(LIVE, {**template, b"entry": renamed(template, f"copy-{n}")},
                              maxlen=MAXLEN, approximate=True)
                pipe.execute()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)  # now read quickly
        received += read_until(sock, f'"id":"copy-{copies - 1}"'.encode(), within=60)
    events = [e.get("event") if e.get("event") == "reset" else json.loads(e["data"])
              ["entry"]["id"] for e in sse_events(received) if "event" in e]
    numbers = [-1 if e == "reset" else int(str(e).removeprefix("copy-"))
               for e in events if e != "template"]
    gaps = [i for i in range(1, len(numbers))
            if numbers[i] >= 0 and numbers[i - 1] >= 0 and numbers[i] != numbers[i - 1] + 1]
    assert "reset" in events, "the client never fell behind: nothing was tested"
    assert not gaps, f"entries missed without a reset: {[numbers[i - 1:i + 1] for i in gaps]}"
    assert numbers[-1] == copies - 1


def wait_on_feed(client: redis.Redis, ident: str) -> dict[bytes, bytes]:
    deadline = time.monotonic() + 15
    while True:
        for _, fields in client.xrange(LIVE):
            if json.loads(fields[b"entry"])["id"] == ident:
                return dict(fields)
        assert time.monotonic() < deadline, f"the worker never published {ident}"
        time.sleep(0.05)


def renamed(fields: dict[bytes, bytes], ident: str) -> bytes:
    return json.dumps({**json.loads(fields[b"entry"]), "id": ident}).encode()


def read_until(sock: socket.socket, marker: bytes, within: float) -> bytes:
    """What `sock` receives until `marker` and a second of silence after it."""
    sock.settimeout(within)
    received = b""
    while received.find(marker, max(0, len(received) - (1 << 17))) < 0:
        chunk = sock.recv(1 << 16)
        assert chunk, "the stream ended"
        received += chunk
    sock.settimeout(1)
    with contextlib.suppress(TimeoutError):
        while chunk := sock.recv(1 << 16):
            received += chunk
    return received


def sse_events(response: bytes) -> list[dict[str, str]]:
    """Each event's fields (a comment's name is empty) in a chunked HTTP response."""
    body, position = b"", response.index(b"\r\n\r\n") + 4
    while (end := response.find(b"\r\n", position)) > 0:
        size = int(response[position:end], 16)
        body += response[end + 2:end + 2 + size]
        position = end + 4 + size
    events = []
    for block in body.decode().replace("\r\n", "\n").split("\n\n"):
        fields = dict(line.partition(":")[::2] for line in block.splitlines())
        events.append({k: v.removeprefix(" ") for k, v in fields.items()})
    return events


def test_a_client_that_saw_nothing_is_not_reset_when_nothing_was_trimmed(
    http: httpx.Client,
) -> None:
    publish(http, mou("kept", "org-a", "org-b"))
    with live(http, last_id="0-0") as stream:
        seen = [stream.next()]
        while seen[-1].get("event") != "entry":
            seen.append(stream.next())
    assert [e.get("event") for e in seen if "event" in e] == ["entry"]  # no reset first
    assert entry_of(seen[-1])["entry"]["id"] == "kept"


def test_bad_parameters_are_named(http: httpx.Client) -> None:
    bad = http.get("/v1/live", params={"entity": "Not An Id"})
    assert bad.status_code == 400
    assert [e["path"] for e in bad.json()["errors"]] == ["entity"]
    for last_id in ("yesterday", "18446744073709551616-0"):  # 2**64: no stream id
        bad = http.get("/v1/live", headers={"Last-Event-ID": last_id})
        assert bad.status_code == 400, last_id
        assert [e["path"] for e in bad.json()["errors"]] == ["Last-Event-ID"]
    bad = http.get("/v1/live", params={"entity": "abc\n"})
    assert bad.status_code == 400


def test_an_empty_last_event_id_is_no_id(http: httpx.Client) -> None:
    with live(http) as stream:  # "earlier" is on the feed before the client below connects
        publish(http, mou("earlier", "org-a", "org-b"))
        assert entry_of(stream.entries(1)[0])["entry"]["id"] == "earlier"
    with live(http, last_id="") as stream:  # no id: from now on, not from the start
        publish(http, mou("later", "org-a", "org-b"))
        seen = [stream.next()]
        while seen[-1].get("event") != "entry":
            seen.append(stream.next())
    assert [e.get("event") for e in seen if "event" in e] == ["entry"]  # no reset
    assert entry_of(seen[-1])["entry"]["id"] == "later"


def test_timeline_tail_follows_the_same_stream(
    http: httpx.Client, redis_url: str, tmp_path: Path
) -> None:
    env = processes.env_for(redis_url)
    with (tmp_path / "tail.err").open("wb") as errors:
        tail = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "tail", "--entity", "org-t", "--json"], env=env,
            cwd=processes.ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors)
    try:
        deadline = time.monotonic() + 20
        while b"following" not in (tmp_path / "tail.err").read_bytes():
            assert tail.poll() is None and time.monotonic() < deadline, "tail did not start"
            time.sleep(0.05)
        publish(http, mou("not-for-tail", "org-u", "org-v"))
        publish(http, mou("for-tail", "org-t", "org-v"))
        assert tail.stdout is not None
        ready, _, _ = select.select([tail.stdout], [], [], 20)
        assert ready, "tail printed nothing"
        line = json.loads(tail.stdout.readline())
    finally:
        tail.kill()
        tail.wait()
        if tail.stdout is not None:
            tail.stdout.close()
    assert line["entry"]["id"] == "for-tail"
    assert "entity:org-t" in line["timelines"]


def test_a_broken_live_stream_never_stalls_the_projection(
    http: httpx.Client, sync_redis: redis.Redis
) -> None:
    sync_redis.set(LIVE, "not a stream")  # every XADD to it now fails with WRONGTYPE
    position = publish(http, mou("still-projected", "org-a", "org-b"))
    wait_applied(http, position)
    entries = http.get("/v1/timelines/entity/org-a").json()["entries"]
    assert [e["id"] for e in entries] == ["still-projected"]
    # and acknowledged: nothing left pending for a successor to choke on
    partition = position.split("-")[0]
    deadline = time.monotonic() + 10
    while sync_redis.xpending(f"timeline:{{p{partition}}}:log", "timelines")["pending"]:
        assert time.monotonic() < deadline, "the batch was never acknowledged"
        time.sleep(0.05)
