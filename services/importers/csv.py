"""A CSV file with a header row into events, one row per event.

Column mapping (also in README, "Import"). Column names are case-sensitive,
their order is free, and an unknown column refuses the whole file (so a typo
is not silently dropped):

- `id`, `type`, `subject`, `occurred` (required): the envelope's attributes;
  `occurred` is a partial date (`2023`, `2023-12?`, `2023-08-14/2023-08-18`),
  and a row may leave it empty when it gives `time`, as an event may omit it.
- `source`: the event's source; when absent or empty, the importer's default
  (`urn:csv:<file name without extension>` from the CLI).
- `time`: RFC 3339 timestamp.
- `headline`, `summary`, `title`: the same fields of `data`.
- `parties`: entities separated by `;`, each `id` or `id=Name`, filling the
  type's roles in order: visitor, host (site.visited); acquirer, target
  (acquisition.announced); provider, client (solution.deployed); investor
  (investment.announced); recipient (award.received); `parties` for every
  other type (mou.signed, contract.concluded, collaboration.launched,
  meeting.held, vendor types).
- `country`, `region`, `city`, `site`: `data.place`; `country` is ISO 3166-1
  alpha-2 and required when any of the others is given.
- `topics`, `sources`: lists separated by `;`.
- `data`: a JSON object for the rest of a type's data (`{"award": "Best
  paper", "rank": 1}`); a field it sets that a column above sets too rejects
  the row (merging would keep one of the two unseen).

Example:

    id,type,subject,occurred,parties,country,city,topics,headline
    mou-1,mou.signed,lg-ai-research,2023-12?,lg-ai-research=LG AI Research;jax=JAX,US,,ai;bio,
    visit-1,site.visited,lg,2023-07?,koo=Koo Kwang-mo;lg=LG Group,PL,Wroclaw,cleantech,

A row whose `parties`, place or `data` cannot be read is rejected with the
reason; everything else is checked by the envelope's validation.
"""

from __future__ import annotations

from typing import Any

import msgspec

from events.codec import UNREADABLE
from services.importers.common import Items, csv_records
from services.publishing import Unusable

REQUIRED = ("id", "type", "subject", "occurred")
OPTIONAL = ("source", "time", "headline", "summary", "title", "parties", "country", "region",
            "city", "site", "topics", "sources", "data")
PLACE = ("country", "region", "city", "site")

# Which data fields the `parties` column fills, in order, per type; others get `parties`.
ROLES: dict[str, tuple[str, ...]] = {
    "site.visited": ("visitor", "host"),
    "acquisition.announced": ("acquirer", "target"),
    "solution.deployed": ("provider", "client"),
    "investment.announced": ("investor",),
    "award.received": ("recipient",),
}


def parse_parties(text: str) -> list[dict[str, str]]:
    """'a=Name A; b' -> [{id: a, name: Name A}, {id: b}]; ValueError on `=Name` or `a=`."""
    refs: list[dict[str, str]] = []
    for item in text.split(";"):
        if not item.strip():  # `a;b;`: as the other lists, a trailing `;` names nobody
            continue
        ident, sep, name = item.partition("=")
        if not ident.strip() or (sep and not name.strip()):
            raise ValueError(f"parties: {item.strip()!r} is not `id` or `id=Name`")
        ref = {"id": ident.strip()}
        if sep:
            ref["name"] = name.strip()
        refs.append(ref)
    return refs


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(";") if part.strip()]


def _data(row: dict[str, str]) -> dict[str, Any]:
    """The event's data from the row; ValueError naming the column that is wrong."""
    data: dict[str, Any] = {}
    if row.get("data"):
        try:
            data = msgspec.json.decode(row["data"])
        except UNREADABLE as exc:
            raise ValueError(f"data: not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ValueError("data: must be a JSON object")
    filled = _columns(row)
    # Merging would keep one of the two unseen: `data`'s city under a `country` column.
    for field, (column, _) in filled.items():
        if field in data:
            raise ValueError(f"{column}: sets data.{field}, which the data column sets "
                             "too; give it once")
    return {**data, **{field: value for field, (_, value) in filled.items()}}


def _columns(row: dict[str, str]) -> dict[str, tuple[str, Any]]:
    """data field -> (the column that fills it, its value), from the non-empty columns."""
    filled: dict[str, tuple[str, Any]] = {
        c: (c, row[c]) for c in ("headline", "summary", "title") if row.get(c)}
    if row.get("parties"):
        refs = parse_parties(row["parties"])
        roles = ROLES.get(row["type"])
        if roles is None:
            filled["parties"] = ("parties", refs)
        elif len(refs) > len(roles):
            raise ValueError(f"parties: {row['type']} takes at most {len(roles)} "
                             f"({', '.join(roles)}), got {len(refs)}")
        else:
            filled.update((role, ("parties", ref))
                          for role, ref in zip(roles, refs, strict=False))
    place = {k: row[k] for k in PLACE if row.get(k)}
    if place:
        if "country" not in place:
            raise ValueError("country: required when region, city or site is given")
        filled["place"] = (next(iter(place)), place)
    filled.update((c, (c, _split(row[c]))) for c in ("topics", "sources") if row.get(c))
    return filled


def events(text: str, default_source: str = "urn:csv:import") -> Items:
    """(line number, CloudEvent dict or Unusable) for every data row."""
    for line, row in csv_records(text, REQUIRED, "the CSV file", (*REQUIRED, *OPTIONAL)):
        if isinstance(row, Unusable):
            yield line, row
            continue
        try:
            data = _data(row)
        except ValueError as exc:
            yield line, Unusable([str(exc)], row.get("id") or None)
            continue
        event: dict[str, Any] = {
            "specversion": "1.0", "id": row["id"], "source": row.get("source") or default_source,
            "type": row["type"], "subject": row["subject"], "data": data,
        }
        if row.get("occurred"):  # else the envelope dates it by `time`, or names the lack
            event["occurred"] = row["occurred"]
        if row.get("time"):
            event["time"] = row["time"]
        yield line, event
