"""The web page in a real headless Chromium against `timeline serve --demo`.

Skips, saying why, when no Chromium is installed (Debian: apt-get install -y chromium).
Screenshots land in tests/artifacts/; docs/screenshot.png is rewritten when it is
missing or TIMELINE_UPDATE_SCREENSHOT=1.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from services.redis.embedded import free_port
from tests import processes
from tests.browser import INSTALL_HINT, Browser, find_chromium
from tests.factory import ref

ARTIFACTS = processes.ROOT / "tests" / "artifacts"
DOCS_SCREENSHOT = processes.ROOT / "docs" / "screenshot.png"
SOURCE = "urn:timeline:demo:korean-business-daily"


@pytest.fixture
def chromium() -> str:
    binary = find_chromium()
    if binary is None:
        pytest.skip(INSTALL_HINT)
    return binary


class Serve:
    """`timeline serve --demo` on a free port with its own embedded server: stopped and
    started again, it keeps its port and its data."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = processes.env_for(None, TIMELINE_DATA_DIR=str(tmp_path / "data"))
        self.env.pop("TIMELINE_REDIS_URL", None)
        self.log = tmp_path / "serve.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = processes.start(["serve", "--demo", "--port", str(self.port)],
                                       self.env, self.log)
        processes.wait_http(self.base, "/readyz", timeout=60, process=self.process)

    def stop(self) -> None:
        if self.process is not None:
            process, self.process = self.process, None
            assert processes.stop(process) == 0


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    serve = Serve(tmp_path)
    try:
        serve.start()
        deadline = time.monotonic() + 30
        while not httpx.get(serve.base + "/v1/timelines/entity/lg-ai-research").json()["entries"]:
            assert time.monotonic() < deadline, "the demo was never projected"
            time.sleep(0.2)
        yield serve
    finally:
        serve.stop()


@pytest.fixture
def demo(serve: Serve) -> str:
    return serve.base


@contextlib.contextmanager
def answering(port: int, status: int) -> Iterator[None]:
    """Every request to `port` answered `status`, as a proxy answers for an API that is down."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the name http.server calls
            body = b'{"error": "unavailable", "message": "the API is down"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def publish(base: str, event: dict[str, Any]) -> None:
    response = httpx.post(base + "/v1/events", json={"specversion": "1.0", "source": SOURCE,
                                                     "subject": "lg-ai-research", **event})
    assert response.status_code == 200, response.text


ROWS = "[...document.querySelectorAll('#list tbody tr')]"
MESSAGE = "(document.getElementById('message')?.innerText ?? '')"


# The page's streams from now on, in window.sources; while window.refuse is set, each
# asks for what the API refuses (a 400), as if it were still down for streams.
RECORD_SOURCES = """(() => {
  window.sources = [];
  window.refuse = false;
  const Native = window.EventSource;
  window.EventSource = function (url) {
    const s = new Native(window.refuse ? '/v1/live?entity=%20' : url);
    window.sources.push(s);
    return s;
  };
  Object.setPrototypeOf(window.EventSource, Native); // EventSource.CLOSED and the rest
})()"""
OPEN_SOURCES = "window.sources.filter((s) => s.readyState !== EventSource.CLOSED).length"
LIVE_ON = "document.getElementById('live-status')?.classList.contains('on')"
LIVE_STATUS = "document.getElementById('live-status').innerText"


PICK_TWICE = RECORD_SOURCES + """; (() => {
  const pick = (kind, key) => {
    document.getElementById('kind').value = kind;
    document.getElementById('kind').dispatchEvent(new Event('change'));
    document.getElementById('key1').value = key;
    document.getElementById('pick').requestSubmit();
  };
  pick('topic', 'ai');
  pick('entity', 'jax');
})()"""


def row_text(browser: Browser, event_id: str) -> str | None:
    key = json.dumps(f"{SOURCE}\x1f{event_id}")
    found: str | None = browser.evaluate(
        f"(() => {{ const r = {ROWS}.find((r) => r.dataset.key === {key});"
        " return r ? r.dataset.status + ' | ' + r.innerText : null; })()")
    return found


def test_the_lg_ai_research_page(chromium: str, demo: str, tmp_path: Path) -> None:
    browser = Browser(chromium, tmp_path / "profile")
    try:
        browser.navigate(f"{demo}/?entity=lg-ai-research")
        browser.wait_for(f"{ROWS}.length >= 11")
        mou = row_text(browser, "demo-mou-lgai-jax")
        assert mou is not None
        assert "Dec 2023?" in mou and "The Jackson Laboratory" in mou and "mou.signed" in mou
        drawn = browser.evaluate(
            "[...document.querySelectorAll('#timeline .vis-item-content')].map((i) => i.innerText)")
        assert any("Dec 2023?" in text and "Jackson" in text for text in drawn)
        assert len(drawn) == browser.evaluate(f"{ROWS}.length")
        browser.wait_for("document.getElementById('title').innerText.includes('LG AI Research')")
        browser.wait_for(LIVE_ON)
        browser.screenshot(ARTIFACTS / "web-page.png")
        if not DOCS_SCREENSHOT.exists() or os.environ.get("TIMELINE_UPDATE_SCREENSHOT") == "1":
            DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
            shutil.copyfile(ARTIFACTS / "web-page.png", DOCS_SCREENSHOT)

        # A new event appears without a reload (SSE).
        publish(demo, {"id": "web-test-meeting", "type": "meeting.held", "occurred": "2024-03",
                       "data": {"parties": [{"id": "lg-ai-research"}, ref("web-test-partner")],
                                "purpose": "browser test"}})
        browser.wait_for(f"{ROWS}.some((r) => r.innerText.includes('Web Test Partner'))")
        assert "Mar 2024" in (row_text(browser, "web-test-meeting") or "")

        # Corrected: marked live, and its history opens on click.
        publish(demo, {"id": "web-test-fix", "type": "event.corrected", "occurred": "2024-04-02",
                       "data": {"target": "web-test-meeting", "reason": "it was in April",
                                "occurred": "2024-04~"}})
        browser.wait_for(f"{ROWS}.some((r) => r.dataset.status === 'corrected')")
        corrected = row_text(browser, "web-test-meeting") or ""
        assert corrected.startswith("corrected") and "Apr 2024~" in corrected
        assert "corrected (v2)" in corrected
        browser.evaluate(f"{ROWS}.find((r) => r.dataset.status === 'corrected')"
                         ".querySelector('.badge').click()")
        history = browser.wait_for(
            "(() => { const v = [...document.querySelectorAll('#history-versions > li')]"
            ".map((l) => l.innerText); return v.length === 2 ? v : null; })()")
        assert history[0].startswith("meeting.held")
        assert history[1].startswith("event.corrected") and "it was in April" in history[1]
        browser.screenshot(ARTIFACTS / "web-page-history.png")
        browser.evaluate("document.getElementById('history').close()")

        # Retracted: hidden live, shown again with "show retracted".
        publish(demo, {"id": "web-test-retract", "type": "event.retracted",
                       "occurred": "2024-04-03",
                       "data": {"target": "web-test-meeting", "reason": "never happened"}})
        browser.wait_for(f"!{ROWS}.some((r) => r.innerText.includes('Web Test Partner'))")
        browser.evaluate("document.getElementById('retracted').click()")
        browser.wait_for(f"{ROWS}.some((r) => r.dataset.status === 'retracted')")
        assert "retracted=1" in browser.evaluate("location.search")

        # Type-ahead over known entities.
        browser.evaluate("(() => { const i = document.getElementById('key1'); i.value = 'jack';"
                         " i.dispatchEvent(new Event('input')); })()")
        options = browser.wait_for(
            "[...document.querySelectorAll('#entity-options option')].map((o) => o.value)"
            ".filter((v) => v === 'jax').length ? [...document.querySelectorAll("
            "'#entity-options option')].map((o) => o.label) : null")
        assert "The Jackson Laboratory (org)" in options

        # Two timelines picked in quick succession: the page shows the second only, and
        # follows one live stream (the first load's pages and stream are dropped).
        browser.evaluate(PICK_TWICE)
        browser.wait_for("document.getElementById('title').innerText.includes('jax')")
        browser.wait_for("/^[0-9]+ entries$/.test(document.getElementById('message').innerText)")
        time.sleep(1)  # the first load's pages, had they been kept, would be in by now
        jax = httpx.get(demo + "/v1/timelines/entity/jax",  # "show retracted" is still on
                        params={"include_retracted": "true"}).json()["entries"]
        assert set(browser.evaluate(f"{ROWS}.map((r) => r.dataset.key)")) == {
            f"{e['source']}\x1f{e['id']}" for e in jax}
        assert browser.evaluate(OPEN_SOURCES) == 1

        # A city whose name holds what Python, not JavaScript, counts as a space: the
        # page's key for it is the server's, so the entry arrives live.
        city = "Odd\x85Town\ufeff"
        browser.navigate(f"{demo}/?place=US&city={quote(city)}")
        browser.wait_for(LIVE_ON)
        publish(demo, {"id": "web-test-city", "type": "x-web-test.noted", "occurred": "2024",
                       "data": {"headline": "web-test-city",
                                "place": {"country": "US", "city": city}}})
        browser.wait_for(f"{ROWS}.length === 1")

        # Five centuries: the chart fits them all (a 200-year zoom cap drew neither).
        for ident, occurred in (("web-test-1500", "1500"), ("web-test-2020", "2020-05-05")):
            publish(demo, {"id": ident, "type": "x-web-test.noted", "subject": "centuries-co",
                           "occurred": occurred, "data": {"headline": ident}})
        browser.navigate(f"{demo}/?entity=centuries-co")
        browser.wait_for(f"{ROWS}.length === 2")
        browser.wait_for("document.querySelectorAll('#timeline .vis-item-content').length === 2")
        assert browser.errors == []
    finally:
        browser.close()


def test_an_error_says_each_problem_once(chromium: str, demo: str, tmp_path: Path) -> None:
    # The API's message names the problem its `errors` list repeats: shown once.
    answer = httpx.get(demo + "/v1/timelines/entity/Bad%20Id").json()
    assert answer["errors"][0]["message"] in answer["message"]
    browser = Browser(chromium, tmp_path / "profile")
    try:
        browser.navigate(f"{demo}/?entity=Bad%20Id")
        shown = browser.wait_for(f"{MESSAGE}.startsWith('Could not') && {MESSAGE}")
        assert shown == f"Could not load this timeline: {answer['message']}"
        assert browser.errors == []
    finally:
        browser.close()


def test_one_entry_is_counted_as_one(chromium: str, demo: str, tmp_path: Path) -> None:
    publish(demo, {"id": "web-test-solo", "type": "x-web-test.noted", "subject": "solo-co",
                   "occurred": "2024-05", "data": {"headline": "alone"}})
    browser = Browser(chromium, tmp_path / "profile")
    try:
        browser.navigate(f"{demo}/?entity=solo-co")
        assert browser.wait_for(f"{ROWS}.length === 1 && {MESSAGE}") == "1 entry"  # "1 entries"
        browser.wait_for(LIVE_ON)
        publish(demo, {"id": "web-test-solo-2", "type": "x-web-test.noted",
                       "subject": "solo-co", "occurred": "2024-06", "data": {"headline": "two"}})
        assert browser.wait_for(f"{ROWS}.length === 2 && {MESSAGE}").startswith(
            "2 entries · updated")
        assert browser.errors == []
    finally:
        browser.close()


SPANS = """Object.fromEntries([...document.querySelectorAll('#timeline .vis-item.vis-range')]
  .map((i) => { const r = i.getBoundingClientRect(); return [i.innerText, [r.left, r.right]]; }))"""


@pytest.mark.parametrize("year", ["0001", "9999"])
def test_months_at_the_ends_of_the_calendar(chromium: str, demo: str, tmp_path: Path,
                                            year: str) -> None:
    # November and December of the first and last years: each drawn a month wide, one
    # after the other, in local time as the axis is (9999-12's end was garbage).
    for month in ("11", "12"):
        publish(demo, {"id": f"web-test-{year}-{month}", "type": "x-web-test.noted",
                       "subject": f"calendar-{year}-co", "occurred": f"{year}-{month}",
                       "data": {"headline": "month"}})
    browser = Browser(chromium, tmp_path / "profile")
    try:
        browser.call("Emulation.setTimezoneOverride", timezoneId="Asia/Seoul")
        browser.navigate(f"{demo}/?entity=calendar-{year}-co")
        spans = browser.wait_for(f"(() => {{ const s = {SPANS};"
                                 " return Object.keys(s).length === 2 && s; })()")
        (nov_left, nov_right), (dec_left, dec_right) = (
            spans[f"Nov {year} · month"], spans[f"Dec {year} · month"])
        assert nov_right - nov_left > 100  # a month is wide in a window of two
        assert dec_left == pytest.approx(nov_right, abs=1)
        assert (dec_right - dec_left) / (nov_right - nov_left) == pytest.approx(31 / 30, abs=0.01)
        assert browser.errors == []
    finally:
        browser.close()


FOCUSED_ROW = ("document.activeElement.matches('#list tbody tr')"
               " ? document.activeElement.dataset.key : null")
HISTORY_OPEN = ("document.getElementById('history').open"
                " && document.getElementById('history-title').innerText")


def test_the_page_by_keyboard(chromium: str, demo: str, tmp_path: Path) -> None:
    browser = Browser(chromium, tmp_path / "profile")
    try:
        browser.navigate(f"{demo}/?entity=lg-ai-research")
        browser.wait_for(f"{ROWS}.length >= 11")
        # Every field has a label (a placeholder is none), the first one whatever it asks.
        unlabelled = ("[...document.querySelectorAll('#pick input, #pick select')]"
                      ".filter((e) => !e.labels.length && !e.getAttribute('aria-label'))"
                      ".map((e) => e.id)")
        assert browser.evaluate(unlabelled) == []
        browser.evaluate("(() => { const k = document.getElementById('kind'); k.value = 'place';"
                         " k.dispatchEvent(new Event('change')); })()")
        assert browser.evaluate("document.getElementById('key1').getAttribute('aria-label')"
                                ) == "country code"

        # Tab from the form's button reaches the first row; Enter opens its history.
        browser.evaluate("document.querySelector('#pick button').focus()")
        for _ in range(20):
            if browser.evaluate(FOCUSED_ROW):
                break
            browser.press("Tab")
        assert browser.evaluate(FOCUSED_ROW) == browser.evaluate(f"{ROWS}[0].dataset.key")
        headline = browser.evaluate(f"{ROWS}[0].querySelector('.headline').innerText")
        browser.press("Enter")
        assert browser.wait_for(HISTORY_OPEN) == headline
        browser.press("Escape")
        browser.wait_for("!document.getElementById('history').open")

        # Space on the next row opens that one's.
        browser.evaluate(f"{ROWS}[1].focus()")
        browser.press(" ")
        assert browser.wait_for(HISTORY_OPEN) == browser.evaluate(
            f"{ROWS}[1].querySelector('.headline').innerText")
        assert browser.errors == []
    finally:
        browser.close()


def test_live_entries_change_only_their_rows(chromium: str, demo: str, tmp_path: Path) -> None:
    browser = Browser(chromium, tmp_path / "profile")
    try:
        browser.navigate(f"{demo}/?entity=lg-ai-research")
        browser.wait_for(f"{ROWS}.length >= 11")
        browser.wait_for(LIVE_ON)
        browser.evaluate(f"{ROWS}.forEach((r) => {{ r.marked = true; }})")

        # A new entry, one moved by a correction (and from a month to a day), one retracted.
        publish(demo, {"id": "web-live-new", "type": "x-web-test.noted", "occurred": "2024-01-10",
                       "data": {"headline": "web-live-new"}})
        publish(demo, {"id": "web-live-fix", "type": "event.corrected", "occurred": "2024-04-02",
                       "data": {"target": "demo-mou-lgai-jax", "occurred": "2024-01-20",
                                "reason": "the day is known"}})
        publish(demo, {"id": "web-live-retract", "type": "event.retracted",
                       "occurred": "2024-04-03",
                       "data": {"target": "demo-solution-lg-hh", "reason": "a duplicate"}})
        changed = {f"{SOURCE}\x1f{i}" for i in ("web-live-new", "demo-mou-lgai-jax")}
        browser.wait_for(f"{ROWS}.some((r) => r.innerText.includes('web-live-new'))"
                         f" && {ROWS}.some((r) => r.dataset.status === 'corrected')"
                         f" && !{ROWS}.some((r) => r.innerText.includes('LG H&H'))")

        # The rows the entries did not change are the very nodes drawn before.
        rows = browser.evaluate(f"{ROWS}.map((r) => [r.dataset.key, r.marked === true])")
        assert [key for key, marked in rows if not marked] == sorted(
            changed, key=[key for key, _ in rows].index)
        drawn = browser.evaluate(
            "[...document.querySelectorAll('#timeline .vis-item-content')]"
            ".map((i) => [i.innerText, i.closest('.vis-item').classList.contains('vis-point')])")
        assert len(drawn) == len(rows)
        assert [point for text, point in drawn if text.startswith("20 Jan 2024 ·")] == [True]
        assert browser.evaluate(MESSAGE).startswith(f"{len(rows)} entries · updated")

        # In the order a load puts them in.
        browser.navigate(f"{demo}/?entity=lg-ai-research")
        browser.wait_for(f"{ROWS}.length && !{ROWS}[0].marked")
        assert browser.evaluate(f"{ROWS}.map((r) => r.dataset.key)") == [k for k, _ in rows]
        assert browser.errors == []
    finally:
        browser.close()


def test_live_comes_back_after_an_outage(chromium: str, serve: Serve, tmp_path: Path) -> None:
    browser = Browser(chromium, tmp_path / "profile")
    try:
        browser.navigate(f"{serve.base}/?entity=lg-ai-research")
        browser.wait_for(f"{ROWS}.length >= 11")
        browser.wait_for(LIVE_ON)
        browser.evaluate(RECORD_SOURCES)

        # The API down behind a proxy answering 503: the browser closes the stream for
        # good (it retries only a dropped connection), and the page opens another.
        serve.stop()
        with answering(serve.port, 503):
            browser.wait_for("window.sources.length >= 1")
            assert not browser.evaluate(LIVE_ON)
            browser.evaluate("window.refuse = true")
        serve.start()

        # Published while the page has no stream: a reopened stream starts at the newest
        # entry, so the page loads the timeline again once it has one.
        publish(serve.base, {"id": "web-test-outage", "type": "x-web-test.noted",
                             "occurred": "2024-01-05", "data": {"headline": "web-test-outage"}})
        assert browser.evaluate(LIVE_STATUS).startswith(("live: off, retrying in",
                                                         "live: reconnecting…"))
        browser.evaluate("window.refuse = false")
        browser.wait_for(f"{ROWS}.some((r) => r.innerText.includes('web-test-outage'))",
                         timeout=40)  # the page waits up to 30 s between tries
        browser.wait_for(LIVE_ON)
        assert browser.evaluate(LIVE_STATUS) == "live"
        assert browser.evaluate(OPEN_SOURCES) == 1
        publish(serve.base, {"id": "web-test-after", "type": "x-web-test.noted",
                             "occurred": "2024-01-06", "data": {"headline": "web-test-after"}})
        browser.wait_for(f"{ROWS}.some((r) => r.innerText.includes('web-test-after'))")

        # Another timeline picked while a reopen waits: the wait ends with the stream.
        browser.evaluate("window.refuse = true; document.getElementById('pick').requestSubmit()")
        browser.wait_for(f"{LIVE_STATUS}.startsWith('live: off, retrying in')")
        browser.evaluate("window.refuse = false; document.getElementById('pick').requestSubmit()")
        browser.wait_for(LIVE_ON)
        time.sleep(2.5)  # the reopen that waited, had it been kept, would have opened by now
        assert browser.evaluate(OPEN_SOURCES) == 1
        assert browser.evaluate(LIVE_STATUS) == "live"
        assert browser.errors == []
    finally:
        browser.close()
