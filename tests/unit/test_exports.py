"""Exports checked by parsers: TimelineJS against the Knight Lab's own files, iCalendar
with the `icalendar` package, CSV with the csv module. Pure: no server."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import icalendar
import pytest

from events.dates import parse_partial_date
from events.stored import StoredEvent
from projections.entry import Entry, build_entry
from services.exports import csv as csv_export
from services.exports import ics, timelinejs
from services.exports.common import display_date

ROOT = Path(__file__).resolve().parents[2]
SHARED_TIMELINEJS = ROOT.parent / "shared" / "data" / "timelinejs"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TRICKY = 'Deal, "signed"; then\nannounced \\ in Seoul — 서울에서 체결된 양해각서'


def ref(ident: str, name: str) -> dict[str, str]:
    return {"id": ident, "name": name, "kind": "org"}


def entry(ident: str, occurred: str, event_type: str = "mou.signed", *,
          data: dict[str, Any] | None = None, status: str = "active",
          version: int = 1) -> Entry:
    data = data or {"parties": [ref("lgai", "LG AI Research"), ref("jax", "JAX")],
                    "topics": ["ai", "bio"], "place": {"country": "US", "city": "New York"}}
    stored = StoredEvent(id=ident, source="urn:test", type=event_type, subject="lgai",
                         occurred=occurred, data=data,
                         recordedtime="2024-02-11T09:30:00.000001Z", recordedby="cli",
                         partition=3, sequence=7)
    return build_entry(stored, parse_partial_date(occurred), data, version=version,
                       status=status)  # type: ignore[arg-type]


MOU = entry("mou", "2023-12?")
AWARD = entry("award", "2024~", "award.received",
              data={"recipient": ref("lgai", "LG AI Research"), "award": "top 5"})
CONTRACT = entry("contract", "2024-02-11")
VISIT = entry("visit", "2023-08-14/2023-08-18", "site.visited",
              data={"visitor": ref("koo", "Koo"), "place": {"country": "US"}})
TRICKY_ENTRY = entry("tricky", "2023-07", data={
    "parties": [ref("lgai", "LG AI Research"), ref("jax", "JAX")], "headline": TRICKY,
    "place": {"country": "KR", "city": "Seoul, Gangnam"}})
ENTRIES = [VISIT, MOU, AWARD, CONTRACT, TRICKY_ENTRY]


# --- dates in words -------------------------------------------------------------------


@pytest.mark.parametrize(("occurred", "words"), [
    ("2023-12?", "Dec 2023?"), ("2024~", "c. 2024"), ("2024-02-11", "11 Feb 2024"),
    ("2023-07%", "c. Jul 2023?"), ("2023", "2023"),
    ("2023-08-14/2023-08-18", "14 Aug 2023 – 18 Aug 2023"),
])
def test_display_date_says_the_qualifier_in_words(occurred: str, words: str) -> None:
    assert display_date(occurred) == words


# --- TimelineJS -------------------------------------------------------------------------


def test_timelinejs_gives_only_the_known_date_parts() -> None:
    doc = json.loads(timelinejs.render("entity", "lgai", ENTRIES, "LG AI Research"))
    visit, mou, award, contract, _ = doc["events"]
    assert mou["text"]["headline"] == "LG AI Research and JAX signed an MOU"
    assert mou["start_date"] == {"year": "2023", "month": "12"}
    assert "end_date" not in mou
    assert mou["display_date"] == "Dec 2023?"
    assert mou["group"] == "mou.signed"
    assert award["text"]["headline"] == "LG AI Research received top 5"
    assert award["start_date"] == {"year": "2024"}
    assert award["display_date"] == "c. 2024"
    assert contract["start_date"] == {"year": "2024", "month": "2", "day": "11"}
    assert (visit["start_date"], visit["end_date"]) == (
        {"year": "2023", "month": "8", "day": "14"}, {"year": "2023", "month": "8", "day": "18"})
    # TimelineJS reads a missing month or day as the first: an interval's end is whole
    months = timelinejs.slide(entry("months", "2023-07/2023-09~"))
    assert (months["start_date"], months["end_date"], months["display_date"]) == (
        {"year": "2023", "month": "7"}, {"year": "2023", "month": "9", "day": "30"},
        "Jul 2023 – c. Sep 2023")
    years = timelinejs.slide(entry("years", "2023/2024"))
    assert years["end_date"] == {"year": "2024", "month": "12", "day": "31"}
    assert doc["title"]["text"]["headline"] == "Entity timeline: LG AI Research (lgai)"
    assert doc["title"]["text"]["text"] == "<p>5 events</p>"
    assert timelinejs.document("entity", "lgai", [MOU])["title"]["text"]["text"] == (
        "<p>1 event</p>")
    ids = [e["unique_id"] for e in doc["events"]]
    assert len(set(ids)) == len(ids)
    assert ids[1] == "e-" + hashlib.sha1(b"urn:test\x1fmou").hexdigest()


def test_timelinejs_of_an_empty_timeline_is_one_timelinejs_accepts() -> None:
    """TimelineJS 3 refuses a document whose `events` is empty ("Timeline configuration
    has no events"), even with a title slide; each event needs a start_date with a year."""
    doc = json.loads(timelinejs.render("topic", "none", [], None))
    assert doc["title"]["text"]["headline"] == "Topic timeline: none"
    [only] = doc["events"]
    assert only["start_date"]["year"].isdigit()
    assert only["text"]["headline"] == "No entries"
    assert only["display_date"] == "no entries"  # not the placeholder's date
    assert timelinejs.render("topic", "none", [], None) == timelinejs.render(
        "topic", "none", [], None)


def test_timelinejs_keeps_a_summarys_lines_and_paragraphs() -> None:
    """HTML folds newlines into spaces: lines become <br>, blank lines paragraphs."""
    summary = "Signed in <b>Seoul</b>\r\nby both CEOs & staff\n\n \nFollow-up: 2024"
    slide = timelinejs.slide(entry("lines", "2023", "x-test.noted",
                                   data={"headline": "h", "summary": summary}))
    assert ("<p>Signed in &lt;b&gt;Seoul&lt;/b&gt;<br>by both CEOs &amp; staff</p>"
            "<p>Follow-up: 2024</p>") in slide["text"]["text"]
    assert "<b>Seoul" not in slide["text"]["text"]


def test_exports_stopped_at_the_cap_say_so() -> None:
    """An export with entries left says it is not the whole timeline, in the TimelineJS
    title slide and the calendar's description alike; a whole one says nothing of it."""
    cut = timelinejs.document("entity", "lgai", [MOU, AWARD], more=True)
    assert cut["title"]["text"]["text"] == (
        "<p>2 events, where the export stopped: more may follow "
        "(continue with the cursor it gave).</p>")
    assert timelinejs.document("entity", "lgai", [MOU, AWARD])["title"]["text"]["text"] == (
        "<p>2 events</p>")
    calendar = icalendar.Calendar.from_ical(ics.render("entity", "lgai", [MOU, AWARD],
                                                       more=True))
    # icalendar leaves an X- property as written, so its one escape is undone here
    assert str(calendar["X-WR-CALDESC"]).replace("\\,", ",") == (
        "2 events, where the export stopped: more may follow "
        "(continue with the cursor it gave).")
    assert "X-WR-CALDESC" not in icalendar.Calendar.from_ical(
        ics.render("entity", "lgai", [MOU, AWARD]))


def test_timelinejs_escapes_html_in_text() -> None:
    evil = entry("evil", "2023", "x-test.noted", data={"headline": "<script>x</script>"})
    slide = timelinejs.slide(evil)
    assert slide["text"]["headline"] == "&lt;script&gt;x&lt;/script&gt;"
    assert "<script>" not in slide["text"]["text"]


def _shape(value: Any) -> Any:
    """Keys and types, not values: what a TimelineJS reader relies on."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return type(value).__name__


def _reference_files() -> list[Path]:
    """The Knight Lab's files when ../shared/data is here, else our fixture of that shape."""
    shared = sorted(SHARED_TIMELINEJS.glob("*.json"))
    return shared or [FIXTURES / "timelinejs" / "sample.json"]


# Slide keys of the TimelineJS 3 JSON format (Knight Lab's documentation).
SLIDE_KEYS = {"start_date", "end_date", "text", "media", "group", "display_date",
              "background", "autolink", "unique_id"}
DATE_KEYS = {"year", "month", "day", "hour", "minute", "second", "millisecond",
             "display_date", "format"}


@pytest.mark.parametrize("reference", _reference_files(), ids=lambda p: p.name)
def test_timelinejs_has_the_shape_of_the_knight_lab_files(reference: Path) -> None:
    theirs = json.loads(reference.read_text())
    ours = json.loads(timelinejs.render("entity", "lgai", ENTRIES, "LG AI Research"))
    assert set(ours) <= set(theirs) | {"title", "events", "eras", "scale"}
    assert isinstance(ours["events"], list) and isinstance(theirs["events"], list)
    # every key both sides use has the same shape (strings for date parts, {headline, text})
    their_shapes: dict[str, list[Any]] = {}
    for event in theirs["events"]:
        for key, value in event.items():
            their_shapes.setdefault(key, []).append(_shape(value))
    for event in ours["events"]:
        assert set(event) <= SLIDE_KEYS
        for key, value in event.items():
            if key in ("start_date", "end_date"):
                assert set(value) <= DATE_KEYS
                assert all(isinstance(v, str) and v.isdigit() for v in value.values())
            if key in their_shapes:
                shape = _shape(value)
                assert any(_fits(shape, s) for s in their_shapes[key]), (key, shape)
    their_title = theirs.get("title", {}).get("text")
    if their_title is not None:
        assert _shape(ours["title"]["text"]) == {k: "str" for k in their_title}


def _fits(ours: Any, theirs: Any) -> bool:
    """`ours` uses a subset of `theirs`' keys with the same types (dates drop unknown parts)."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return set(ours) <= set(theirs) and all(_fits(v, theirs[k]) for k, v in ours.items())
    return bool(ours == theirs)


# --- iCalendar ------------------------------------------------------------------------


def _events(body: bytes) -> dict[str, Any]:
    calendar = icalendar.Calendar.from_ical(body)
    return {str(e["UID"]): e for e in calendar.walk("VEVENT")}


def _uid(ident: str) -> str:
    return hashlib.sha1(f"urn:test\x1f{ident}".encode()).hexdigest() + "@timeline"


def test_ics_spans_cover_partial_dates_with_exclusive_ends() -> None:
    body = ics.render("entity", "lgai", ENTRIES, "LG AI Research")
    events = _events(body)
    assert len(events) == len(ENTRIES)
    spans = {ident: (events[_uid(ident)].decoded("DTSTART"), events[_uid(ident)].decoded("DTEND"))
             for ident in ("mou", "award", "contract", "visit")}
    assert spans == {
        "mou": (dt.date(2023, 12, 1), dt.date(2024, 1, 1)),
        "award": (dt.date(2024, 1, 1), dt.date(2025, 1, 1)),
        "contract": (dt.date(2024, 2, 11), dt.date(2024, 2, 12)),
        "visit": (dt.date(2023, 8, 14), dt.date(2023, 8, 19)),
    }
    mou = events[_uid("mou")]
    assert str(mou["SUMMARY"]) == "LG AI Research and JAX signed an MOU"
    assert str(mou["LOCATION"]) == "New York, US"
    assert str(mou["STATUS"]) == "TENTATIVE"
    assert str(events[_uid("contract")]["STATUS"]) == "CONFIRMED"
    assert "Dec 2023? (month precision, uncertain)" in str(mou["DESCRIPTION"])
    calendar = icalendar.Calendar.from_ical(body)
    assert str(calendar["X-WR-CALNAME"]) == "Entity timeline: LG AI Research (lgai)"


def test_ics_spans_reach_the_ends_of_the_calendar() -> None:
    events = _events(ics.render("entity", "lgai", [entry("last", "9999"),
                                                   entry("early", "0900-03-04")], None))
    last, early = events[_uid("last")], events[_uid("early")]
    # no DTEND past 9999-12-31: the year's length instead
    assert last.decoded("DTSTART") == dt.date(9999, 1, 1) and "DTEND" not in last
    assert last.decoded("DURATION") == dt.timedelta(days=365)
    assert (early.decoded("DTSTART"), early.decoded("DTEND")) == (
        dt.date(900, 3, 4), dt.date(900, 3, 5))


def test_ics_leaves_out_control_characters_text_may_not_hold() -> None:
    body = ics.escape("a\x00b\x07c\x0bd\te\nf\x7f")
    assert body == "abcd\te\\nf"


def test_ics_escapes_and_folds_long_lines() -> None:
    body = ics.render("entity", "lgai", [TRICKY_ENTRY, MOU], None)
    assert body.endswith(b"\r\n")
    lines = body.split(b"\r\n")[:-1]
    assert all(len(line) <= 75 for line in lines)
    assert any(line.startswith(b" ") for line in lines), "the long headline must be folded"
    assert b"\n" not in body.replace(b"\r\n", b"")
    for line in lines:  # folding never splits a UTF-8 character
        line.decode()
    tricky = _events(body)[_uid("tricky")]
    assert str(tricky["SUMMARY"]) == TRICKY
    assert str(tricky["LOCATION"]) == "Seoul, Gangnam, KR"


def test_ics_uids_are_stable_and_corrections_bump_sequence() -> None:
    corrected = entry("mou", "2023-12-05", status="corrected", version=2)
    retracted = entry("award", "2024", "award.received", status="retracted", version=1,
                      data={"recipient": ref("lgai", "LG AI Research"), "award": "x"})
    first, again = _events(ics.render("all", "all", [MOU], None)), _events(
        ics.render("all", "all", [corrected, retracted], None))
    assert set(first) <= set(again)
    assert int(first[_uid("mou")]["SEQUENCE"]) == 0
    assert int(again[_uid("mou")]["SEQUENCE"]) == 1
    assert str(again[_uid("award")]["STATUS"]) == "CANCELLED"
    # a retraction keeps the version, but is a revision a subscribed calendar must take
    assert int(again[_uid("award")]["SEQUENCE"]) == 1


def test_ics_stamps_are_when_entries_were_recorded_so_exports_repeat() -> None:
    """RFC 5545 3.8.7.2: with a METHOD, DTSTAMP is when the file was made, which no
    two exports share; without one it is when the information was last revised."""
    body = ics.render("entity", "lgai", ENTRIES, None)
    assert ics.render("entity", "lgai", ENTRIES, None) == body
    calendar = icalendar.Calendar.from_ical(body)
    assert "METHOD" not in calendar
    recorded = dt.datetime(2024, 2, 11, 9, 30, tzinfo=dt.UTC)  # whole seconds: DATE-TIME
    assert {e.decoded("DTSTAMP") for e in calendar.walk("VEVENT")} == {recorded}


def test_ics_of_an_empty_timeline_has_a_component_and_no_event() -> None:
    """RFC 5545 3.6: a VCALENDAR holds one component or more; with no entries that is
    one readers must ignore (an x-comp), never an event on a made-up day."""
    body = ics.render("topic", "none", [], None)
    calendar = icalendar.Calendar.from_ical(body)
    assert str(calendar["X-WR-CALNAME"]) == "Topic timeline: none"
    assert calendar.walk("VEVENT") == []
    [component] = calendar.subcomponents
    assert component.name.startswith("X-") and len(component) >= 1  # 1*contentline
    assert body.endswith(b"END:VCALENDAR\r\n")


def test_ics_fold_counts_octets() -> None:
    line = "SUMMARY:" + "é" * 100
    folded = ics.fold(line).split("\r\n")
    assert all(len(part.encode()) <= 75 for part in folded)
    assert "".join(p.removeprefix(" ") for p in folded) == line


# --- CSV ------------------------------------------------------------------------------


def test_csv_round_trips_through_the_csv_module() -> None:
    text = csv_export.render("entity", "lgai", ENTRIES, None)
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert list(rows[0]) == list(csv_export.COLUMNS)
    for required in ("source", "id", "type", "subject", "occurred", "occurred_start",
                     "occurred_end", "precision", "qualifier", "headline", "entities", "place",
                     "topics", "status", "version", "recordedtime", "position"):
        assert required in csv_export.COLUMNS
    assert len(rows) == len(ENTRIES)
    by_id = {r["id"]: r for r in rows}
    mou = by_id["mou"]
    assert (mou["occurred"], mou["occurred_start"], mou["occurred_end"], mou["precision"],
            mou["qualifier"]) == ("2023-12?", "2023-12-01", "2023-12-31", "month", "?")
    assert (mou["entities"], mou["topics"], mou["place"], mou["version"]) == (
        "lgai;jax", "ai;bio", "New York, US", "1")
    assert by_id["tricky"]["headline"] == TRICKY
    assert by_id["tricky"]["place"] == "Seoul, Gangnam, KR"
    assert by_id["contract"]["qualifier"] == ""
    assert by_id["visit"]["occurred_end"] == "2023-08-18"


def test_csv_of_an_empty_timeline_is_just_the_header() -> None:
    assert csv_export.render("topic", "none", [], None) == ",".join(csv_export.COLUMNS) + "\r\n"
