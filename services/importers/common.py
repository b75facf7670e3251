"""What the importers share: entity ids from names, and the shape of what they yield.

An importer is a pure function from a file's text to an iterator of
(line number, item), where an item is a CloudEvent dict, still to be validated
by the envelope, or an `Unusable` carrying the importer's reason for refusing
the record. `services.publishing.publish_all` validates, appends and counts.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import unicodedata
from collections.abc import Iterable, Iterator
from typing import Any

from events.refs import ENTITY_ID_PATTERN
from services.publishing import Unusable

Item = dict[str, Any] | Unusable
Items = Iterator[tuple[int, Item]]

_ENTITY = re.compile(ENTITY_ID_PATTERN)
_EVENT_ID = re.compile(r"^[A-Za-z0-9._:/@+-]{1,128}$")
_URL = re.compile(r"^https?://\S+$")
_URL_START = re.compile(r",\s*(?=https?://)|,\s*$")


class BadFile(ValueError):
    """The file as a whole cannot be imported (wrong columns, not JSON): nothing is appended."""


def slugify(name: str, limit: int = 128) -> str | None:
    """An entity id or topic from a display name: 'LG AI Research' -> 'lg-ai-research'.

    Accents are dropped ('Berkäna' -> 'berkana'), every run of other characters
    becomes one '-'. None when nothing usable is left ('???')."""
    ascii_text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:limit].rstrip("-")
    return slug if slug and _ENTITY.fullmatch(slug) else None


def event_id(text: str) -> str:
    """`text` when it is a valid event id, else a readable slug with a hash of the original
    (so two texts that slug alike still get different ids)."""
    if _EVENT_ID.fullmatch(text):
        return text
    digest = hashlib.sha1(text.encode()).hexdigest()[:12]
    return f"{(slugify(text, 100) or 'x')}-{digest}"


def urls(candidates: Iterable[str]) -> list[str]:
    """The http(s) URLs among `candidates` (each one URL, or not a URL), in order,
    without repeats (max 20)."""
    found: list[str] = []
    for candidate in candidates:
        url = candidate.strip()
        if _URL.fullmatch(url) and len(url) <= 2048 and url not in found:
            found.append(url)
    return found[:20]


def url_list(text: str) -> list[str]:
    """The items of a comma-separated list of URLs. A URL may hold a comma itself
    (`...-102-million,1481527/`), so an item starts only where `http(s)://` does; a
    comma closing the list (`a, b, `) is a separator too, not the last URL's end."""
    return _URL_START.split(text)


def cut(text: str, limit: int) -> str:
    """At most `limit` characters, marked with an ellipsis when cut."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def csv_records(
    text: str, required: tuple[str, ...], name: str, known: tuple[str, ...] | None = None,
) -> Iterator[tuple[int, dict[str, str] | Unusable]]:
    """(first line of the record, row with stripped values) of a CSV file with a header row.

    Column names are stripped. A column the header leaves unnamed (a spreadsheet's
    trailing comma) is dropped; a row with a value there, or with more cells than the
    header, is Unusable. A row of blank cells is no record. BadFile when a required
    column is missing, a column is not `known` (when given) or named twice, or the CSV
    itself is broken (a quote never closed, a field too long)."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""), strict=True)
    line = 1
    try:
        header = [cell.strip() for cell in next(reader, [])]
        _check_header(header, required, name, known)
        unnamed = [i for i, column in enumerate(header) if not column]
        line = reader.line_num + 1
        for cells in reader:
            if any(cell.strip() for cell in cells):  # a blank line is no record
                yield line, _record(header, unnamed, cells)
            line = reader.line_num + 1
    except csv.Error as exc:
        raise BadFile(f"{name}, {_where(exc, line, reader.line_num)}") from None


def _check_header(
    header: list[str], required: tuple[str, ...], name: str, known: tuple[str, ...] | None,
) -> None:
    missing = [c for c in required if c not in header]
    if missing:
        raise BadFile(f"{name} lacks the column(s) {', '.join(missing)}")
    named = [c for c in header if c]
    unknown = sorted(set(named) - set(known)) if known is not None else []
    if unknown:
        raise BadFile(f"unknown column(s) {', '.join(unknown)}: see the column mapping")
    repeated = sorted({c for c in named if named.count(c) > 1})
    if repeated:  # a row would keep only the last cell of each: data lost unseen
        raise BadFile(f"{name} names the column(s) {', '.join(repeated)} more than once")


def _record(header: list[str], unnamed: list[int], cells: list[str]) -> dict[str, str] | Unusable:
    if len(cells) > len(header):
        return Unusable([f"{len(cells)} cells, but the header names {len(header)} columns: "
                         "a value with a comma needs double quotes"])
    filled = [i + 1 for i in unnamed if i < len(cells) and cells[i].strip()]
    if filled:
        return Unusable([f"column {filled[0]} holds a value, but the header gives it no name"])
    row = {column: "" for column in header if column}
    row.update((c, cell.strip()) for c, cell in zip(header, cells, strict=False) if c)
    return row


def _where(exc: csv.Error, record_line: int, reader_line: int) -> str:
    """Where and why the CSV broke. The reader notices a quote never closed only at the
    end of the text, or once the quoted value outgrows the field limit: both name the
    line the record starts on, where the quote is."""
    reason = str(exc)
    if reason.startswith("unexpected end of data"):
        return f"line {record_line}: a quote opened in this record is never closed"
    if reason.startswith("field larger than field limit"):
        return (f"line {record_line}: a value longer than {csv.field_size_limit():,} "
                "characters, or a quote opened in this record never closed")
    return f"line {reader_line}: {reason}"
