"""iCalendar (RFC 5545): one all-day VEVENT per entry.

A partial date becomes the all-day span it covers: "2023-12?" runs from
DTSTART 20231201 to DTEND 20240101 (DTEND is exclusive for dates), a year the
whole year. The UID is derived from (source, id) so a calendar that subscribes
to the export updates events instead of duplicating them; SEQUENCE follows the
entry's corrections and a retracted entry is CANCELLED.

There is no METHOD: with one, DTSTAMP would have to be when the file was made
(RFC 5545 3.8.7.2), and no two exports of the same timeline would be the same
bytes. Without it DTSTAMP says when the information was last revised: here the
entry's `recordedtime`, so an unchanged timeline exports unchanged. (For a corrected
or retracted entry that is still when the original was recorded, as the entry
carries no amendment's time; its SEQUENCE is what tells a reader it changed.)
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

from projections.entry import Entry
from services.exports.common import (
    cut_short,
    display_date,
    entity_label,
    entry_hash,
    place_label,
    qualifier_words,
    summary_of,
    title,
)

MEDIA_TYPE = "text/calendar; charset=utf-8"
PRODID = "-//timeline-service//timeline exports//EN"
FOLD_OCTETS = 75
# RFC 5545 3.6 wants at least one component in a VCALENDAR ("1*component"). With no
# entries the calendar holds an x-comp, which the RFC tells every reader to ignore: a
# VEVENT would put a made-up day on people's calendars, and an empty VCALENDAR, though
# most readers take it, is not valid.
EMPTY = ["BEGIN:X-TIMELINE-EMPTY", "COMMENT:this timeline has no entries",
         "END:X-TIMELINE-EMPTY"]
_URL = re.compile(r"https?://[^\s\x00-\x1f\x7f]+")
# RFC 5545 3.3.11 allows no control character in TEXT but HTAB (newlines are escaped).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def escape(text: str) -> str:
    """A TEXT value (RFC 5545 3.3.11): backslash, semicolon, comma and newlines escaped,
    other control characters (which a publisher's free text may hold) left out."""
    text = text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    text = text.replace("\r\n", "\\n").replace("\r", "\\n").replace("\n", "\\n")
    return _CONTROL.sub("", text)


def fold(line: str) -> str:
    """Split a content line into lines of at most 75 octets (RFC 5545 3.1).

    Counted in UTF-8 octets and never inside a character; each continuation line
    starts with one space, which counts towards its 75."""
    if len(line.encode()) <= FOLD_OCTETS:
        return line
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for char in line:
        width = len(char.encode())
        if size + width > FOLD_OCTETS:
            pieces.append("".join(current))
            current, size = [], 1
        current.append(char)
        size += width
    pieces.append("".join(current))
    return "\r\n ".join(pieces)


def _day(iso: str) -> str:
    return iso.replace("-", "")


def _stamp(recordedtime: str) -> str:
    moment = dt.datetime.fromisoformat(recordedtime.replace("Z", "+00:00"))
    return moment.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def _status(entry: Entry) -> str:
    if entry.status == "retracted":
        return "CANCELLED"
    return "TENTATIVE" if entry.qualifier in ("?", "%") else "CONFIRMED"


def _description(entry: Entry) -> str:
    words = qualifier_words(entry)
    lines = [
        f"When: {display_date(entry.occurred)} ({entry.precision} precision"
        f"{', ' + words if words else ''})",
        f"Type: {entry.type}",
        "Involved: " + ", ".join(entity_label(e.name, e.id) for e in entry.entities),
    ]
    if entry.topics:
        lines.append("Topics: " + ", ".join(entry.topics))
    if summary_of(entry):
        lines.append(summary_of(entry))
    if entry.status != "active":
        lines.append(f"Status: {entry.status} (version {entry.version})")
    lines.append(f"Source: {entry.source} {entry.id}")
    return "\n".join(lines)


def uid(entry: Entry) -> str:
    return entry_hash(entry) + "@timeline"


def _end(entry: Entry) -> str:
    """DTEND, the day after the last (exclusive); DURATION where that day is past year
    9999, which a DATE value cannot write."""
    last = dt.date.fromisoformat(entry.occurred_end)
    if last < dt.date.max:
        return f"DTEND;VALUE=DATE:{_day((last + dt.timedelta(days=1)).isoformat())}"
    days = (last - dt.date.fromisoformat(entry.occurred_start)).days + 1
    return f"DURATION:P{days}D"


def _sequence(entry: Entry) -> int:
    """How often the entry was revised: each correction, and a retraction (which keeps
    the version), so a subscribed calendar takes the cancellation (RFC 5545 3.8.7.4)."""
    return entry.version - 1 + (entry.status == "retracted")


def vevent(entry: Entry) -> list[str]:
    lines = [
        "BEGIN:VEVENT",
        f"UID:{uid(entry)}",
        f"DTSTAMP:{_stamp(entry.recordedtime)}",
        f"DTSTART;VALUE=DATE:{_day(entry.occurred_start)}",
        _end(entry),
        f"SUMMARY:{escape(entry.headline)}",
        f"DESCRIPTION:{escape(_description(entry))}",
        f"CATEGORIES:{','.join(escape(c) for c in [entry.type, *entry.topics])}",
        f"STATUS:{_status(entry)}",
        f"SEQUENCE:{_sequence(entry)}",
        # the partial date as published, for clients that can do more than all-day spans
        f"X-TIMELINE-OCCURRED:{escape(entry.occurred)}",
    ]
    location = place_label(entry.place)
    if location:
        lines.insert(6, f"LOCATION:{escape(location)}")
    sources = entry.data.get("sources")
    # vendor data is not validated: only a plain http(s) URL may become a URI value
    if isinstance(sources, list) and sources and _URL.fullmatch(str(sources[0])):
        lines.append(f"URL:{sources[0]}")
    lines.append("END:VEVENT")
    return lines


def render(kind: str, key: str, entries: Iterable[Entry], name: str | None = None,
           more: bool = False) -> bytes:
    """`more`: the export stopped at its cap, which the calendar's description says
    (X-WR-CALDESC, read where X-WR-CALNAME is) in the TimelineJS title's words."""
    entries = list(entries)
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{PRODID}",
        "CALSCALE:GREGORIAN",
        f"X-WR-CALNAME:{escape(title(kind, key, name))}",
    ]
    if more:
        lines.append(f"X-WR-CALDESC:{escape(cut_short(len(entries)))}")
    lines.extend([line for entry in entries for line in vevent(entry)] or EMPTY)
    lines.append("END:VCALENDAR")
    return "".join(fold(line) + "\r\n" for line in lines).encode()
