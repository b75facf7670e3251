"""What every export needs: stable ids, a title, dates and places in words."""

from __future__ import annotations

import hashlib
from typing import Any

from events.dates import PartialDate, Precision, parse_partial_date
from projections.entry import Entry

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
QUALIFIER_WORDS = {"?": "uncertain", "~": "approximate", "%": "uncertain and approximate"}
KIND_WORDS = {"entity": "Entity", "pair": "Pair", "place": "Place", "topic": "Topic",
              "all": "All events"}


def entry_hash(entry: Entry) -> str:
    """sha1 hex of (source, id): the identity of an event, stable across exports."""
    return hashlib.sha1(f"{entry.source}\x1f{entry.id}".encode()).hexdigest()


def title(kind: str, key: str, name: str | None = None) -> str:
    """'Entity timeline: LG AI Research (lgai)', 'All events'."""
    if kind == "all":
        return "All events"
    label = f"{name} ({key})" if name and name != key else key
    return f"{KIND_WORDS.get(kind, kind.title())} timeline: {label}"


def parts(occurred: str) -> tuple[PartialDate, PartialDate | None]:
    """The start and, for an interval, the end of a partial date, each with its precision."""
    if "/" in occurred:
        start, _, end = occurred.partition("/")
        return parse_partial_date(start), parse_partial_date(end)
    return parse_partial_date(occurred), None


def _one(date: PartialDate) -> str:
    day = date.earliest
    if date.precision is Precision.DAY:
        text = f"{day.day} {MONTHS[day.month - 1]} {day.year}"
    elif date.precision is Precision.MONTH:
        text = f"{MONTHS[day.month - 1]} {day.year}"
    else:
        text = str(day.year)
    if date.qualifier in ("~", "%"):
        text = "c. " + text
    if date.qualifier in ("?", "%"):
        text += "?"
    return text


def display_date(occurred: str) -> str:
    """The partial date as people write it: 'Dec 2023?', 'c. 2024', '14 Aug 2023'.

    An interval's two ends are joined by an en dash. `?` (uncertain) becomes a
    trailing question mark, `~` (approximate) a leading 'c.',
    `%` both; only the known parts are shown."""
    start, end = parts(occurred)
    return _one(start) if end is None else f"{_one(start)} – {_one(end)}"


def qualifier_words(entry: Entry) -> str:
    return QUALIFIER_WORDS.get(entry.qualifier or "", "")


def place_label(place: dict[str, Any] | None) -> str:
    if not place:
        return ""
    return ", ".join(str(place[k]) for k in ("site", "city", "region", "country") if place.get(k))


def entity_label(name: str | None, ident: str) -> str:
    return f"{name} ({ident})" if name and name != ident else ident


def count(n: int) -> str:
    return "1 event" if n == 1 else f"{n:,} events"


def cut_short(n: int) -> str:
    """What an export stopped at its cap says of itself: not the whole timeline. "May":
    the cursor only says members lie beyond, which filters may still all turn away."""
    return (f"{count(n)}, where the export stopped: more may follow "
            "(continue with the cursor it gave).")


def summary_of(entry: Entry) -> str:
    value = entry.data.get("summary")
    return value if isinstance(value, str) else ""
