"""Exports on the timeline routes and in `timeline show`, from a real API process and a
real worker, checked with the parsers people use (icalendar, csv, json)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import subprocess
import sys
import time
from typing import Any

import httpx
import icalendar
import pytest

from projections.fold import Query
from services.bootstrap import Services
from services.exports.pages import collect
from tests.integration.projection_helpers import publish as append
from tests.integration.projection_helpers import read_all, wait_projected
from tests.processes import ROOT, env_for

SOURCE = "urn:test:exports"


def event(ident: str, kind: str, subject: str, occurred: str,
          data: dict[str, Any]) -> dict[str, Any]:
    return {"specversion": "1.0", "id": ident, "source": SOURCE, "type": kind,
            "subject": subject, "occurred": occurred, "data": data}


def ref(ident: str, name: str) -> dict[str, str]:
    return {"id": ident, "name": name, "kind": "org"}


LGAI, JAX = ref("lgai", "LG AI Research"), ref("jax", "JAX")
STORY = [
    event("mou", "mou.signed", "lgai", "2023-12?",
          {"parties": [LGAI, JAX], "topics": ["ai", "bio"],
           "headline": 'LG AI Research, JAX sign "MOU"; genomics\nand AI'}),
    event("contract", "contract.concluded", "lgai", "2024-02",
          {"parties": [LGAI, JAX], "place": {"country": "US", "city": "Bar Harbor"}}),
    event("award", "award.received", "lgai", "2023-11~",
          {"recipient": LGAI, "award": "top 5", "place": {"country": "US", "city": "New York"}}),
]


def publish(http: httpx.Client, events: list[dict[str, Any]]) -> str:
    response = http.post("/v1/events", json=events)
    assert response.status_code == 200, response.text
    return str(response.json()["position"])


def get(http: httpx.Client, path: str, position: str, **kwargs: Any) -> httpx.Response:
    """GET once the projection has applied `position` (min_position waits up to 5 s)."""
    params = {"min_position": position, **kwargs.pop("params", {})}
    deadline = time.monotonic() + 60
    while True:
        response = http.get(path, params=params, **kwargs)
        if response.status_code != 503 or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


@pytest.fixture
def story(http: httpx.Client, worker: object) -> str:
    return publish(http, STORY)


def test_ics_by_format_and_by_accept(http: httpx.Client, story: str) -> None:
    by_format = get(http, "/v1/timelines/entity/lgai", story, params={"format": "ics"})
    assert by_format.status_code == 200, by_format.text
    assert by_format.headers["content-type"] == "text/calendar; charset=utf-8"
    assert by_format.headers["content-disposition"] == (
        'attachment; filename="timeline-entity-lgai.ics"')
    assert "accept" in by_format.headers["vary"].lower()
    calendar = icalendar.Calendar.from_ical(by_format.content)
    events = {str(e["SUMMARY"]): e for e in calendar.walk("VEVENT")}
    assert len(events) == 3
    mou = events['LG AI Research, JAX sign "MOU"; genomics\nand AI']
    assert (mou.decoded("DTSTART"), mou.decoded("DTEND")) == (dt.date(2023, 12, 1),
                                                             dt.date(2024, 1, 1))
    award = events["LG AI Research received top 5"]
    assert (award.decoded("DTSTART"), award.decoded("DTEND")) == (dt.date(2023, 11, 1),
                                                                 dt.date(2023, 12, 1))
    assert str(award["LOCATION"]) == "New York, US"
    assert str(calendar["X-WR-CALNAME"]) == "Entity timeline: LG AI Research (lgai)"
    by_accept = get(http, "/v1/timelines/entity/lgai", story,
                    headers={"Accept": "text/calendar"})
    assert by_accept.headers["content-type"] == "text/calendar; charset=utf-8"
    assert by_accept.content == by_format.content
    again = get(http, "/v1/timelines/entity/lgai", story, params={"format": "ics"})
    assert again.content == by_format.content  # stable UIDs and stamps: a feed, not a dump


def test_csv_by_format_and_by_accept(http: httpx.Client, story: str) -> None:
    response = get(http, "/v1/timelines/entity/lgai", story,
                   headers={"Accept": "text/csv, application/json;q=0.5"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8; header=present"
    rows = list(csv.DictReader(io.StringIO(response.text, newline="")))
    assert [r["id"] for r in rows] == ["award", "mou", "contract"]
    mou = rows[1]
    assert mou["headline"] == 'LG AI Research, JAX sign "MOU"; genomics\nand AI'
    assert (mou["occurred"], mou["occurred_start"], mou["occurred_end"], mou["qualifier"]) == (
        "2023-12?", "2023-12-01", "2023-12-31", "?")
    assert rows[2]["place"] == "Bar Harbor, US"
    narrowed = get(http, "/v1/timelines/pair/jax/lgai", story,
                   params={"format": "csv", "type": "mou.signed"})
    assert [r["id"] for r in csv.DictReader(io.StringIO(narrowed.text, newline=""))] == ["mou"]


def test_timelinejs_export(http: httpx.Client, story: str) -> None:
    response = get(http, "/v1/timelines/topic/ai", story, params={"format": "timelinejs"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    doc = response.json()
    assert doc["title"]["text"]["headline"] == "Topic timeline: ai"
    [slide] = doc["events"]
    assert slide["start_date"] == {"year": "2023", "month": "12"}
    assert slide["display_date"] == "Dec 2023?"
    assert slide["group"] == "mou.signed"


def test_an_export_as_of_an_instant_is_titled_with_the_name_known_then(
    http: httpx.Client, worker: object
) -> None:
    first = publish(http, [event("z-1", "mou.signed", "zeta", "2023-01",
                                 {"parties": [ref("zeta", "Zeta Old"), JAX]})])
    then = get(http, "/v1/timelines/entity/zeta", first).json()["entries"][0]["recordedtime"]
    later = publish(http, [event("z-2", "mou.signed", "zeta", "2024-01",
                                 {"parties": [ref("zeta", "Zeta New Name"), JAX]})])
    titles = {}
    for as_of in (then, None):
        params = {"format": "timelinejs", **({"as_of": as_of} if as_of else {})}
        doc = get(http, "/v1/timelines/entity/zeta", later, params=params).json()
        titles[as_of] = doc["title"]["text"]["headline"]
    # was "Zeta New Name" for both: the read model's newest name, learned after `then`
    assert titles == {then: "Entity timeline: Zeta Old (zeta)",
                      None: "Entity timeline: Zeta New Name (zeta)"}


def test_an_empty_timeline_exports_documents_their_readers_accept(
        http: httpx.Client, story: str) -> None:
    """200 with the usual headers, and bodies their readers accept: TimelineJS needs a
    dated slide, and a VCALENDAR a component."""
    tljs = get(http, "/v1/timelines/topic/nothing-here", story, params={"format": "timelinejs"})
    assert tljs.status_code == 200, tljs.text
    assert tljs.headers["content-type"] == "application/json"
    assert tljs.headers["x-export-cap"] == "10000" and "x-next-cursor" not in tljs.headers
    doc = tljs.json()
    assert doc["title"]["text"]["headline"] == "Topic timeline: nothing-here"
    assert [e["text"]["headline"] for e in doc["events"]] == ["No entries"]
    assert all(e["start_date"]["year"] for e in doc["events"])
    ics = get(http, "/v1/timelines/topic/nothing-here", story, params={"format": "ics"})
    assert ics.status_code == 200, ics.text
    assert ics.headers["content-type"] == "text/calendar; charset=utf-8"
    assert ics.headers["content-disposition"] == (
        'attachment; filename="timeline-topic-nothing-here.ics"')
    calendar = icalendar.Calendar.from_ical(ics.content)
    assert calendar.walk("VEVENT") == [] and calendar.subcomponents  # RFC 5545: 1*component


def test_json_stays_the_default(http: httpx.Client, story: str) -> None:
    for accept in (None, "*/*", "application/json", "text/html,*/*;q=0.8", "image/png",
                   "text/csv;q=0", "text/calendar;q=0, text/csv;q=0"):  # q=0: not acceptable
        headers = {"Accept": accept} if accept else {}
        response = get(http, "/v1/timelines/entity/lgai", story, headers=headers)
        assert response.status_code == 200, accept
        assert response.headers["content-type"].startswith("application/json")
        assert [e["id"] for e in response.json()["entries"]] == ["award", "mou", "contract"]


def test_the_most_specific_range_sets_a_types_quality(http: httpx.Client, story: str) -> None:
    """RFC 9110 12.5.1: `text/calendar;q=0` refuses calendars even though `text/*`
    would take one."""
    response = get(http, "/v1/timelines/entity/lgai", story,
                   headers={"Accept": "text/*, text/calendar;q=0"})
    assert response.headers["content-type"] == "text/csv; charset=utf-8; header=present"


def test_unknown_format_is_400_naming_the_field(http: httpx.Client) -> None:
    response = http.get("/v1/timelines/all", params={"format": "xml"})
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"path": "format", "message": "format must be one of json, timelinejs, ics, csv"}]


def test_an_export_is_the_whole_timeline_not_one_page(http: httpx.Client,
                                                      worker: object) -> None:
    many = [event(f"m-{i}", "award.received", "lgai", f"20{10 + i % 10}-0{1 + i % 9}",
                  {"recipient": LGAI, "award": f"prize {i}"}) for i in range(1100)]
    publish(http, many[:1000])
    position = publish(http, many[1000:])
    page = get(http, "/v1/timelines/entity/lgai", position)
    assert len(page.json()["entries"]) == 100 and page.json()["next_cursor"]
    export = get(http, "/v1/timelines/entity/lgai", position, params={"format": "csv"})
    rows = list(csv.DictReader(io.StringIO(export.text, newline="")))
    assert len(rows) == 1100 and len({r["id"] for r in rows}) == 1100
    assert "x-next-cursor" not in export.headers
    assert export.headers["x-export-cap"] == "10000"


async def test_collect_stops_at_the_cap_and_resumes(services: Services, worker: object) -> None:
    await append(services, [event(f"c-{i}", "award.received", "lgai", f"2023-0{1 + i % 9}",
                                  {"recipient": LGAI, "award": "x"}) for i in range(25)])
    await wait_projected(services)
    query = Query(timeline="entity:lgai")
    first = await collect(services.read_model, query, cap=10)
    assert len(first.entries) == 10 and first.next_cursor
    rest = await collect(services.read_model, query, first.next_cursor, cap=100)
    assert rest.next_cursor is None
    everything = await read_all(services, query, 7)
    assert [e.id for e in first.entries + rest.entries] == [e.id for e in everything]


async def test_a_capped_export_carries_the_cursor_that_continues_it(
    services: Services, worker: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from litestar.testing import AsyncTestClient

    from services.http import timelines as routes
    from services.http.app import create_app

    await append(services, [event(f"k-{i}", "award.received", "lgai", f"2023-0{1 + i % 9}",
                                  {"recipient": LGAI, "award": "x"}) for i in range(9)])
    await wait_projected(services)
    # The app in this process, so its cap can be 4 rather than 10,000.
    monkeypatch.setattr(routes, "collect", lambda model, query, cursor=None: collect(
        model, query, cursor, cap=4))
    exported: list[str] = []
    params = {"format": "csv"}
    async with AsyncTestClient(create_app(services.settings)) as client:  # its own loop
        while True:
            reply = await client.get("/v1/timelines/entity/lgai", params=params)
            assert reply.status_code == 200, reply.text
            exported += [r["id"] for r in csv.DictReader(io.StringIO(reply.text, newline=""))]
            if "x-next-cursor" not in reply.headers:
                break
            params = {"format": "csv", "cursor": reply.headers["x-next-cursor"]}
        # the formats with room for prose say they stopped short; the last one does not
        first = await client.get("/v1/timelines/entity/lgai", params={"format": "timelinejs"})
        assert "more may follow" in first.json()["title"]["text"]["text"]
        calendar = icalendar.Calendar.from_ical(
            (await client.get("/v1/timelines/entity/lgai", params={"format": "ics"})).content)
        assert "more may follow" in str(calendar["X-WR-CALDESC"])
        last = await client.get("/v1/timelines/entity/lgai",
                                params={"format": "timelinejs", "cursor": params["cursor"]})
        assert "x-next-cursor" not in last.headers
        assert last.json()["title"]["text"]["text"] == "<p>1 event</p>"
    everything = await read_all(services, Query(timeline="entity:lgai"), 7)
    assert exported == [e.id for e in everything] and len(exported) == 9  # 4 + 4 + 1


def show(redis_url: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "services.cli", "show", *args],
                          env=env_for(redis_url), cwd=ROOT, capture_output=True, timeout=60,
                          check=False, stdin=subprocess.DEVNULL)


def test_show_exports(http: httpx.Client, story: str, redis_url: str) -> None:
    get(http, "/v1/timelines/all", story)  # projected
    ics = show(redis_url, "entity", "lgai", "--format", "ics")
    assert ics.returncode == 0, ics.stderr
    assert len(icalendar.Calendar.from_ical(ics.stdout).walk("VEVENT")) == 3
    rows = list(csv.DictReader(io.StringIO(
        show(redis_url, "pair", "jax", "lgai", "--format", "csv").stdout.decode(), newline="")))
    assert [r["id"] for r in rows] == ["mou", "contract"]
    tljs = show(redis_url, "place", "US", "--format", "timelinejs")
    assert b'"display_date":"c. Nov 2023"' in tljs.stdout
    bad = show(redis_url, "all", "--format", "xml")
    assert bad.returncode == 2
