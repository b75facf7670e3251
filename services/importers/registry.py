"""`timeline import --format NAME`: the parsing function for each format name."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from services.importers import acquisitions, csv, gdelt, timelinejs
from services.importers.common import slugify
from services.publishing import read_events

FORMATS = ("jsonl", "csv", "gdelt", "acquisitions", "timelinejs")

Parser = Callable[[str], Iterable[tuple[int, Any]]]


def companies_beside(path: Path) -> Path | None:
    """The acquired-companies file that ships beside an acquisitions file, if there is one:
    `..._acquisitions.csv` -> `..._acquired_companies.csv`."""
    if "acquisitions" not in path.name:
        return None
    sibling = path.with_name(path.name.replace("acquisitions", "acquired_companies"))
    return sibling if sibling != path and sibling.is_file() else None


def parser(fmt: str, path: str, companies: Path | None = None) -> Parser:
    """The function turning the text of `path` (or stdin, `-`) into importable items.

    Raises ValueError for an unknown format; reads the companies file (for
    `acquisitions`) here, so a missing one fails before anything is appended."""
    stem = "stdin" if path == "-" else slugify(Path(path).stem) or "import"
    if fmt == "jsonl":
        return read_events
    if fmt == "csv":
        return lambda text: csv.events(text, default_source=f"urn:csv:{stem}")
    if fmt == "gdelt":
        return gdelt.events
    if fmt == "timelinejs":
        return lambda text: timelinejs.events(text, stem)
    if fmt == "acquisitions":
        beside = companies or (companies_beside(Path(path)) if path != "-" else None)
        companies_text = beside.read_text(encoding="utf-8") if beside else None
        return lambda text: acquisitions.events(text, companies_text)
    raise ValueError(f"unknown import format {fmt!r}: one of {', '.join(FORMATS)}")
