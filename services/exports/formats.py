"""The export formats by name, with their media types: one table for HTTP and the CLI."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from projections.entry import Entry
from services.exports import csv, ics, timelinejs


@dataclass(frozen=True)
class ExportFormat:
    name: str
    media_type: str
    extension: str
    render: Callable[[str, str, list[Entry], str | None, bool], bytes]


def _csv(kind: str, key: str, entries: list[Entry], name: str | None, more: bool) -> bytes:
    return csv.render(kind, key, entries, name, more).encode()


EXPORTS: dict[str, ExportFormat] = {
    "timelinejs": ExportFormat("timelinejs", timelinejs.MEDIA_TYPE, "json", timelinejs.render),
    "ics": ExportFormat("ics", ics.MEDIA_TYPE, "ics", ics.render),
    "csv": ExportFormat("csv", csv.MEDIA_TYPE, "csv", _csv),
}

# Accept-header negotiation: media type -> format; JSON first so `*/*` means JSON.
NEGOTIABLE = {"application/json": "json", "text/calendar": "ics", "text/csv": "csv"}


def render(fmt: str, kind: str, key: str, entries: Iterable[Entry], name: str | None,
           more: bool = False) -> bytes:
    """`more`: the export stopped at its cap with entries left (it has a next cursor)."""
    return EXPORTS[fmt].render(kind, key, list(entries), name, more)


def filename(fmt: str, kind: str, key: str) -> str:
    """A download name made only of safe characters: `timeline-entity-lg-ai-research.ics`."""
    label = "timeline-all" if kind == "all" else f"timeline-{kind}-{key}"
    stem = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "-" for c in label)
    return f"{stem}.{EXPORTS[fmt].extension}"
