"""A TimelineJS 3 JSON file into `x-timelinejs.entry` events, partial dates kept.

Rules (README, "Import"):
- A slide's `start_date` gives `occurred` with the parts it has: a year only ->
  `YYYY`, year and month -> `YYYY-MM`, all three -> `YYYY-MM-DD` (empty strings
  count as absent; hours and minutes are dropped). With an `end_date` it is an
  interval `start/end`. Three-digit years are zero-padded ("602" -> "0602").
- A slide without a start year, with a year outside 1-9999 (TimelineJS allows
  BCE years, the log does not), a day without a month, or a date that does not
  exist is rejected with the reason. "Line" in the rejects file is the slide's
  number in `events` (1-based).
- The subject is the slugified title headline (else the file name); the source
  is `urn:timelinejs:<subject>`.
- The id is the slide's `unique_id` when it is a valid event id, else
  `slide-` + a hash of the slide's content, so a re-run appends nothing.
- Data: `headline` and `summary` (the slide's text without HTML), `group`,
  and the original slide under `slide`. Eras and the title slide are not events,
  nor the "No entries" slide our own export of an empty timeline carries.
"""

from __future__ import annotations

import hashlib
import html
import re
from typing import Any

import msgspec

from events.codec import UNREADABLE
from services.exports.timelinejs import NO_ENTRIES
from services.importers.common import BadFile, Items, cut, slugify
from services.publishing import Unusable

EVENT_TYPE = "x-timelinejs.entry"
_TAG = re.compile(r"<[A-Za-z/!?][^>]*>")  # HTML: "< " or "<5" is text, not a tag
_EVENT_ID = re.compile(r"^[A-Za-z0-9._:/@+-]{1,128}$")


def plain(markup: Any) -> str:
    """Text of an HTML fragment: tags dropped, entities decoded, whitespace collapsed."""
    if not isinstance(markup, str):
        return ""
    return " ".join(html.unescape(_TAG.sub(" ", markup)).split())


def _blank(value: Any) -> bool:
    """Absent: None, or a string of nothing but spaces (spreadsheet converters write
    `"month": ""`)."""
    return value is None or (isinstance(value, str) and not value.strip())


def _part(date: dict[str, Any], name: str) -> int | None:
    value = date.get(name)
    if _blank(value):
        return None
    if isinstance(value, float) and value.is_integer():  # 2023.0: what some writers emit
        return int(value)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"{name} {_shown(value)} is not a whole number")
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name} {_shown(value)} is not a whole number") from None


def _shown(value: Any) -> str:
    """The value as the rejection quotes it: a 5,000-digit year is not echoed whole."""
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def partial_date(date: Any, field: str) -> str:
    """The partial date of a TimelineJS date object; ValueError naming what is wrong."""
    if not isinstance(date, dict):
        raise ValueError(f"{field}: must be an object with at least a year")
    try:
        year, month, day = (_part(date, n) for n in ("year", "month", "day"))
    except ValueError as exc:
        raise ValueError(f"{field}: {exc}") from None
    if year is None:
        raise ValueError(f"{field}: has no year")
    if not 1 <= year <= 9999:
        raise ValueError(f"{field}: year {year} is outside 1-9999 (no BCE dates in the log)")
    if day is not None and month is None:
        raise ValueError(f"{field}: has a day but no month")
    if month is not None and not 1 <= month <= 12:
        raise ValueError(f"{field}: month {month} is not 1-12")
    text = f"{year:04d}"
    if month is not None:
        text += f"-{month:02d}"
    if day is not None:
        text += f"-{day:02d}"
    return text


def _no_date(date: Any) -> bool:
    """Absent, or with no year, month or day (each blank, as `_part` reads them)."""
    return date is None or (isinstance(date, dict) and all(
        _blank(date.get(name)) for name in ("year", "month", "day")))


def occurred_of(slide: dict[str, Any]) -> str:
    start = partial_date(slide.get("start_date"), "start_date")
    if _no_date(slide.get("end_date")):
        return start
    end = partial_date(slide["end_date"], "end_date")
    return start if end == start else f"{start}/{end}"


def slide_id(slide: dict[str, Any]) -> str:
    given = slide.get("unique_id")
    if isinstance(given, str) and _EVENT_ID.fullmatch(given):
        return given
    digest = hashlib.sha1(msgspec.json.encode(slide, order="sorted")).hexdigest()[:20]
    return f"slide-{digest}"


def subject_of(document: dict[str, Any], file_name: str) -> str:
    heading = document.get("title")
    text = heading.get("text") if isinstance(heading, dict) else None
    headline = plain(text.get("headline")) if isinstance(text, dict) else ""
    return slugify(headline) or slugify(file_name) or "timelinejs"


def convert(slide: Any, subject: str) -> dict[str, Any] | Unusable:
    if not isinstance(slide, dict):
        return Unusable(["a slide must be a JSON object"])
    ident = slide_id(slide)
    try:
        occurred = occurred_of(slide)
    except ValueError as exc:
        return Unusable([str(exc)], ident)
    text = slide.get("text")
    if not isinstance(text, dict):
        text = {}
    data: dict[str, Any] = {"headline": cut(plain(text.get("headline")) or "Untitled slide", 300)}
    summary = plain(text.get("text"))
    if summary:
        data["summary"] = cut(summary, 4000)
    if isinstance(slide.get("group"), str) and slide["group"]:
        data["group"] = slide["group"]
    data["slide"] = slide
    return {"specversion": "1.0", "id": ident, "source": f"urn:timelinejs:{subject}",
            "type": EVENT_TYPE, "subject": subject, "occurred": occurred, "data": data}


def events(text: str, file_name: str = "timelinejs") -> Items:
    """(slide number, CloudEvent dict or Unusable) for every slide in `events`."""
    try:
        document = msgspec.json.decode(text)
    except UNREADABLE as exc:
        raise BadFile(f"not JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("events"), list):
        raise BadFile("not a TimelineJS file: no `events` list")
    subject = subject_of(document, file_name)
    for number, slide in enumerate(document["events"], start=1):
        if slide != NO_ENTRIES:  # only there because TimelineJS needs a slide
            yield number, convert(slide, subject)
