"""TimelineJS 3 JSON (https://timeline.knightlab.com/docs/json-format.html).

Shaped like the Knight Lab's own example files (`../shared/data/timelinejs/`):
date parts are strings ("year": "2023", "month": "8"), and a slide's start carries
only the parts that are known, so a month-precision entry has no `day` and
TimelineJS draws it as that month. An interval's `end_date` is its last day in
full: TimelineJS reads a missing month or day as the first, which would end
`2023-07/2023-09` on 1 September. The qualifier, which TimelineJS has no field
for, goes into `display_date` in words ("Dec 2023?", "c. 2024"), which is also
what the slide shows for its dates.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from typing import Any

import msgspec

from events.dates import PartialDate, Precision
from projections.entry import Entry
from services.exports.common import (
    count,
    cut_short,
    display_date,
    entity_label,
    entry_hash,
    parts,
    place_label,
    qualifier_words,
    summary_of,
    title,
)

MEDIA_TYPE = "application/json"

# TimelineJS refuses a document without a dated slide ("Timeline configuration has no
# events", TimelineConfig.validate in TimelineJS 3), title slide or not. So an empty
# timeline gets one slide saying so; its date is only there because TimelineJS needs
# one (fixed, so the export stays reproducible), and `display_date` shows words instead.
NO_ENTRIES = {
    "start_date": {"year": "1970"},
    "display_date": "no entries",
    "text": {"headline": "No entries",
             "text": "<p>Nothing on this timeline matches: it is empty, or the filters "
                     "leave nothing.</p>"},
    "unique_id": "no-entries",
}


def date_parts(date: PartialDate) -> dict[str, str]:
    """Only the parts the precision knows: year; year+month; year+month+day."""
    day = date.earliest
    known = {"year": str(day.year)}
    if date.precision >= Precision.MONTH:
        known["month"] = str(day.month)
    if date.precision is Precision.DAY:
        known["day"] = str(day.day)
    return known


def last_day(date: PartialDate) -> dict[str, str]:
    """The period's last day, every part given."""
    day = date.latest
    return {"year": str(day.year), "month": str(day.month), "day": str(day.day)}


def _paragraph(label: str, value: str) -> str:
    return f"<p><b>{html.escape(label)}:</b> {html.escape(value)}</p>" if value else ""


def _prose(text: str) -> str:
    """Free text as HTML that keeps its shape, which HTML would fold into one line: a
    blank line starts a paragraph, a newline breaks the line. Every piece is escaped."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    paragraphs = (p.strip("\n") for p in re.split(r"\n(?:[ \t]*\n)+", text))
    return "".join("<p>" + "<br>".join(html.escape(line) for line in p.split("\n")) + "</p>"
                   for p in paragraphs if p.strip())


def _text(entry: Entry) -> str:
    when = display_date(entry.occurred)
    words = qualifier_words(entry)
    status = entry.status if entry.status == "active" else (
        f"{entry.status} (version {entry.version})")
    body = [
        _paragraph("When", f"{when} ({entry.precision} precision{', ' + words if words else ''})"),
        _paragraph("Involved", ", ".join(entity_label(e.name, e.id) for e in entry.entities)),
        _paragraph("Where", place_label(entry.place)),
        _paragraph("Topics", ", ".join(entry.topics)),
        _prose(summary_of(entry)),
        _paragraph("Status", status) if entry.status != "active" else "",
        _paragraph("Source", f"{entry.source} {entry.id}"),
    ]
    return "".join(body)


def slide(entry: Entry) -> dict[str, Any]:
    start, end = parts(entry.occurred)
    event: dict[str, Any] = {"start_date": date_parts(start)}
    if end is not None:
        event["end_date"] = last_day(end)
    event["display_date"] = display_date(entry.occurred)
    event["text"] = {"headline": html.escape(entry.headline), "text": _text(entry)}
    event["group"] = entry.type
    event["unique_id"] = "e-" + entry_hash(entry)
    return event


def document(
    kind: str, key: str, entries: Iterable[Entry], name: str | None = None, more: bool = False
) -> dict[str, Any]:
    """`more`: the export stopped at its cap, so the title slide must not pass the
    events for the whole timeline."""
    events = [slide(e) for e in entries]
    heading = title(kind, key, name)
    about = cut_short(len(events)) if more else count(len(events))
    return {
        "title": {"text": {"headline": html.escape(heading),
                           "text": f"<p>{html.escape(about)}</p>"}},
        "events": events or [NO_ENTRIES],
    }


def render(kind: str, key: str, entries: Iterable[Entry], name: str | None = None,
           more: bool = False) -> bytes:
    return msgspec.json.encode(document(kind, key, entries, name, more))
