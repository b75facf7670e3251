"""Partial dates: the EDTF level-0/1 subset of DESIGN 3.4.

A partial date has a precision (year, month, day), an optional qualifier
(`?` uncertain, `~` approximate, `%` both) and spans [earliest, latest] days.
An interval `A/B` spans from A's earliest to B's latest and takes A's precision;
its qualifier says what either end says (`2023~/2024?` is `%`).
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from enum import IntEnum

import msgspec

from events.errors import EventValidationError

_PART = re.compile(r"([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2}))?)?([?~%]?)")


class Precision(IntEnum):
    """Coarser precisions sort first (DESIGN 3.4 ordering rule)."""

    YEAR = 0
    MONTH = 1
    DAY = 2

    @property
    def label(self) -> str:
        return self.name.lower()


class PartialDate(msgspec.Struct, frozen=True):
    text: str
    precision: Precision
    qualifier: str
    earliest: dt.date
    latest: dt.date

    @property
    def span_days(self) -> int:
        return (self.latest - self.earliest).days


def _parse_part(text: str, path: str) -> tuple[Precision, str, dt.date, dt.date]:
    match = _PART.fullmatch(text)
    if not match:
        raise EventValidationError.one(
            path, f"{text!r} is not a partial date (YYYY, YYYY-MM or YYYY-MM-DD, optional ?~%)"
        )
    year_s, month_s, day_s, qualifier = match.groups()
    year = int(year_s)
    if year == 0:
        raise EventValidationError.one(path, "year 0000 is not allowed")
    try:
        if day_s:
            day = dt.date(year, int(month_s), int(day_s))
            return Precision.DAY, qualifier, day, day
        if month_s:
            month = int(month_s)
            last = calendar.monthrange(year, month)[1]
            return Precision.MONTH, qualifier, dt.date(year, month, 1), dt.date(year, month, last)
    except ValueError as exc:
        raise EventValidationError.one(path, f"{text!r} is not a real date: {exc}") from None
    return Precision.YEAR, qualifier, dt.date(year, 1, 1), dt.date(year, 12, 31)


_DOUBTS = {"": set(), "?": {"?"}, "~": {"~"}, "%": {"?", "~"}}


def _both(start: str, end: str) -> str:
    """One qualifier for an interval: an uncertain or approximate end makes it so."""
    doubts = _DOUBTS[start] | _DOUBTS[end]
    return "%" if len(doubts) == 2 else "".join(doubts)


def parse_partial_date(text: str, path: str = "occurred") -> PartialDate:
    """Parse `text`; raise EventValidationError naming `path` when it is not one."""
    if not isinstance(text, str):
        raise EventValidationError.one(path, "must be a string")
    if "/" in text:
        start_s, _, end_s = text.partition("/")
        precision, qualifier, earliest, _ = _parse_part(start_s, path)
        _, end_qualifier, _, latest = _parse_part(end_s, path)
        if latest < earliest:
            raise EventValidationError.one(path, f"interval {text!r} ends before it starts")
        return PartialDate(text, precision, _both(qualifier, end_qualifier), earliest, latest)
    precision, qualifier, earliest, latest = _parse_part(text, path)
    return PartialDate(text, precision, qualifier, earliest, latest)


def day_of(timestamp: dt.datetime) -> str:
    """The day-precision partial date of an RFC 3339 timestamp (its own offset)."""
    return timestamp.date().isoformat()


def sort_key(date: PartialDate) -> tuple[dt.date, int]:
    """The date part of the timeline order: earliest day, coarser precision first."""
    return (date.earliest, int(date.precision))
