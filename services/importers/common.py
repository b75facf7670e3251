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
_URL_START = re.compile(r",\s*(?=https?://)")


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
    (`...-102-million,1481527/`), so an item starts only where `http(s)://` does."""
    return _URL_START.split(text)


def cut(text: str, limit: int) -> str:
    """At most `limit` characters, marked with an ellipsis when cut."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def csv_records(
    text: str, required: tuple[str, ...], name: str, known: tuple[str, ...] | None = None,
) -> Iterator[tuple[int, dict[str, str] | Unusable]]:
    """(first line of the record, row with stripped values) of a CSV file with a header row;
    a row with more cells than the header is Unusable. BadFile when a required column is
    missing, a column is not `known` (when given) or named twice, or the CSV itself is
    broken (a quote never closed, a field too long)."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""), strict=True)
    try:
        header = next(reader, [])
        missing = [c for c in required if c not in header]
        if missing:
            raise BadFile(f"{name} lacks the column(s) {', '.join(missing)}")
        unknown = sorted(set(header) - set(known)) if known is not None else []
        if unknown:
            raise BadFile(f"unknown column(s) {', '.join(unknown)}: see the column mapping")
        repeated = sorted({c for c in header if header.count(c) > 1})
        if repeated:  # a row would keep only the last cell of each: data lost unseen
            raise BadFile(f"{name} names the column(s) {', '.join(repeated)} more than once")
        line = reader.line_num + 1
        for cells in reader:
            if len(cells) > len(header):
                yield line, Unusable([f"{len(cells)} cells, but the header names "
                                      f"{len(header)} columns: a value with a comma needs "
                                      "double quotes"])
            elif cells:  # a blank line is no record
                row = dict.fromkeys(header, "")
                row.update(zip(header, (cell.strip() for cell in cells), strict=False))
                yield line, row
            line = reader.line_num + 1
    except csv.Error as exc:
        raise BadFile(f"{name}, line {reader.line_num}: {exc}") from None
