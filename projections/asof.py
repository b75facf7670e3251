"""The as-of index: which version of each entry a timeline held at any instant.

An entry that was never amended has one version, on its timelines since it was
recorded; its live member already carries that recorded time (projections.entry
.member) and its status flag says it was never amended (`a`), so it needs
nothing more. Once an entry is amended, every version it has had goes into the
timeline's append-only "ever" set, as the version's live member followed by

    SEP, added (20 digits), removed (20 digits; all nines while current), doc sequence

`added` is when the event that made the version was recorded, `removed` when
the next one was, and the doc sequence names the log entry that made it. The
live member is a prefix, so ever members sort in timeline order exactly like
live members, and a page "as of T" walks both sets merged in that order,
keeping the never-amended live members recorded by T and the ever members with
added <= T < removed (page.lua). The entry as it was is the live document while
the version is current, else the copy kept when it was superseded, under
`superseded_field(key, doc sequence)`.

Keeping the index to amended entries keeps the projection's write path close to
what it was without it: an ordinary event adds no index member at all.

Pure: these functions are the reference for page.lua and name what apply.lua writes.
"""

from __future__ import annotations

import datetime as dt
import functools

SEP = "\x1e"
OPEN = "9" * 20
STAMP_DIGITS = 20
_RECORDED = slice(9, 9 + STAMP_DIGITS)  # of a live member: after the day and the precision


@functools.lru_cache(maxsize=4096)  # one append batch shares one recordedtime
def stamp(recorded: str) -> str:
    """YYYYMMDDhhmmssffffff of an RFC 3339 UTC time written like `recordedtime`.

    Only the digits count, so the text must already be UTC (a trailing `Z`).
    """
    digits = "".join(ch for ch in recorded if ch.isdigit())
    return digits[:STAMP_DIGITS].ljust(STAMP_DIGITS, "0")


def utc_text(moment: dt.datetime) -> str:
    """A timezone-aware instant written exactly like `recordedtime`."""
    utc = moment.astimezone(dt.UTC)
    return utc.isoformat(timespec="microseconds").replace("+00:00", "Z")


def amended(status: str) -> bool:
    """Whether an entry in this status has been corrected or retracted (it never
    returns to "active"), so its versions live in the ever set."""
    return status != "active"


def suffix(added: str, removed: str, doc_sequence: int) -> str:
    return f"{SEP}{added}{removed}{doc_sequence}"


def superseded_field(key: str, doc_sequence: int | str) -> str:
    return f"{key}\x1f{doc_sequence}"


def split(ever: str) -> tuple[str, str, str, str]:
    """(live member, added, removed, doc sequence) of an ever-set member."""
    member, _, rest = ever.rpartition(SEP)
    return member, rest[:STAMP_DIGITS], rest[STAMP_DIGITS:2 * STAMP_DIGITS], rest[2 * STAMP_DIGITS:]


def visible(ever: str, at: str) -> bool:
    """Whether this version was the one on its timeline at stamp `at`."""
    _, added, removed, _ = split(ever)
    return added <= at < removed


def live_visible(member: str, at: str) -> bool:
    """Whether a live member stands for the entry as of `at` on its own: never
    amended (status flag `a`) and recorded by then."""
    first = member.index("\x1f")
    flag = member[member.index("\x1f", first + 1) + 9]
    return flag == "a" and member[_RECORDED] <= at
