"""CSV (RFC 4180): a header row, then one entry per row.

The partial date is kept as written (`occurred`, e.g. "2023-12?") next to its
`occurred_start`/`occurred_end` days, `precision` and `qualifier`, so a
spreadsheet can sort by day without losing what was known. Lists are joined
with ";" (`entities`, `topics`), names with "; ".
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from projections.entry import Entry
from services.exports.common import place_label

MEDIA_TYPE = "text/csv; charset=utf-8; header=present"

COLUMNS = (
    "source", "id", "type", "subject", "occurred", "occurred_start", "occurred_end",
    "precision", "qualifier", "headline", "entities", "entity_names", "place", "country",
    "city", "topics", "status", "version", "recordedtime", "recordedby", "position",
)


def row(entry: Entry) -> list[str]:
    place = entry.place or {}
    return [
        entry.source, entry.id, entry.type, entry.subject, entry.occurred,
        entry.occurred_start, entry.occurred_end, entry.precision, entry.qualifier or "",
        entry.headline, ";".join(e.id for e in entry.entities),
        "; ".join(e.name or e.id for e in entry.entities), place_label(entry.place),
        str(place.get("country", "")), str(place.get("city", "")), ";".join(entry.topics),
        entry.status, str(entry.version), entry.recordedtime, entry.recordedby, entry.position,
    ]


def render(kind: str, key: str, entries: Iterable[Entry], name: str | None = None,
           more: bool = False) -> str:
    """The CSV text; (kind, key, name, more) are accepted for symmetry with the other
    formats: a row of prose would break the table, so a cut is told only beside it
    (X-Next-Cursor, `timeline show` on stderr)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    writer.writerows(row(e) for e in entries)
    return out.getvalue()
