"""docs/reliability.md, written by the test modules that prove its figures.

Several modules contribute sections (fault tests, schemathesis, abuse tests).
A scenario that passes replaces its own section (matched by title); the others
stay, so running one file, or skipping the slow marker, does not erase what
another run proved. Every section names the file that wrote it and when, so an
old figure is visible as such; a full `make test` run refreshes them all.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

REPORT = Path(__file__).resolve().parent.parent / "docs" / "reliability.md"
HEADER = [
    "# Reliability figures",
    "",
    "Written by the integration tests (part of `make test`) from what they asserted: a",
    "section is replaced only by a run in which its scenario passed, and names the test",
    "file and the time of that run. Real processes and a real Valkey throughout.",
    "",
]
_SECTION = re.compile(r"^## ", re.MULTILINE)


def _sections(text: str) -> list[str]:
    parts = _SECTION.split(text)
    return ["## " + part.rstrip("\n") for part in parts[1:]]


def record(writer: str, found: dict[str, dict[str, Any]], path: Path = REPORT) -> None:
    """Write `found` (title → figures) as `writer`'s sections, replacing same-titled ones."""
    kept = []
    if path.exists():
        for section in _sections(path.read_text()):
            title = section.splitlines()[0][3:]
            if title not in found:
                kept.append(section)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    mine = []
    for title, values in found.items():
        lines = [f"## {title}", "", f"_Written by `{writer}`, {stamp}._", "",
                 "| figure | value |", "|---|---|"]
        lines += [f"| {name} | {value} |" for name, value in values.items()]
        mine.append("\n".join(lines))
    path.parent.mkdir(exist_ok=True)
    path.write_text("\n".join(HEADER) + "\n" + "\n\n".join(kept + mine) + "\n")
