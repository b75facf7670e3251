"""GDELT 2.0 event exports (61 tab-separated columns, no header) into timeline events.

Rules (README, "Import"):
- CAMEO 057 (sign formal agreement) with two different actors -> `mou.signed`.
- 042 (make a visit) and 043 (host a visit) -> `site.visited`, the visitor being
  Actor1 of a 042 and Actor2 of a 043, the place the action's location. GDELT
  codes one visit twice, once from each side (same SQLDATE, actors swapped, 042
  and 043): such a mirrored pair becomes one visit, id `<042 id>+<043 id>`.
- 040 and the other 04x (consult) with two different actors -> `meeting.held`.
- Everything else, and a catalog code whose required actors or place are
  missing, -> `x-gdelt.<code>` with the row's non-empty fields as data.
- SQLDATE is `occurred` (day precision); DATEADDED is the event's `time` and,
  verbatim, the extension attribute `gdeltadded` (vendor types also keep it in data).
- Actor names become entity ids (slugified); geo codes are FIPS 10-4, mapped to
  ISO 3166 (`countries.py`).
- A row with no usable actor, a bad SQLDATE/DATEADDED, or the wrong number of
  columns is rejected with the reason.
- Ids are the GLOBALEVENTIDs, so importing a file again appends nothing.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from services.importers import cameo
from services.importers.common import Items, cut, slugify, urls
from services.importers.countries import iso_from_fips
from services.publishing import Unusable

SOURCE = "urn:gdelt:v2:events"

COLUMNS = (
    "GLOBALEVENTID", "SQLDATE", "MonthYear", "Year", "FractionDate",
    "Actor1Code", "Actor1Name", "Actor1CountryCode", "Actor1KnownGroupCode", "Actor1EthnicCode",
    "Actor1Religion1Code", "Actor1Religion2Code", "Actor1Type1Code", "Actor1Type2Code",
    "Actor1Type3Code", "Actor2Code", "Actor2Name", "Actor2CountryCode", "Actor2KnownGroupCode",
    "Actor2EthnicCode", "Actor2Religion1Code", "Actor2Religion2Code", "Actor2Type1Code",
    "Actor2Type2Code", "Actor2Type3Code", "IsRootEvent", "EventCode", "EventBaseCode",
    "EventRootCode", "QuadClass", "GoldsteinScale", "NumMentions", "NumSources", "NumArticles",
    "AvgTone", "Actor1Geo_Type", "Actor1Geo_FullName", "Actor1Geo_CountryCode",
    "Actor1Geo_ADM1Code", "Actor1Geo_ADM2Code", "Actor1Geo_Lat", "Actor1Geo_Long",
    "Actor1Geo_FeatureID", "Actor2Geo_Type", "Actor2Geo_FullName", "Actor2Geo_CountryCode",
    "Actor2Geo_ADM1Code", "Actor2Geo_ADM2Code", "Actor2Geo_Lat", "Actor2Geo_Long",
    "Actor2Geo_FeatureID", "ActionGeo_Type", "ActionGeo_FullName", "ActionGeo_CountryCode",
    "ActionGeo_ADM1Code", "ActionGeo_ADM2Code", "ActionGeo_Lat", "ActionGeo_Long",
    "ActionGeo_FeatureID", "DATEADDED", "SOURCEURL",
)

MOU, VISIT_MADE, VISIT_HOSTED = "057", "042", "043"
# CAMEO actor types that make an entity a government body or an organisation.
GOV_TYPES = frozenset({"GOV", "MIL", "JUD", "LEG", "COP", "SPY"})
ORG_TYPES = frozenset({"BUS", "MNC", "IGO", "NGO", "EDU", "MED", "HLH", "LAB"})
CITY_GEO, REGION_GEO = frozenset({"3", "4"}), frozenset({"2", "5"})


@dataclass(frozen=True)
class Actor:
    id: str
    name: str
    kind: str | None

    def ref(self) -> dict[str, str]:
        ref = {"id": self.id, "name": cut(self.name, 300)}
        return {**ref, "kind": self.kind} if self.kind else ref


@dataclass
class Row:
    line: int
    fields: dict[str, str]
    occurred: str
    time: str
    actor1: Actor | None
    actor2: Actor | None
    place: dict[str, str] | None

    @property
    def id(self) -> str:
        return self.fields["GLOBALEVENTID"]

    @property
    def code(self) -> str:
        return self.fields["EventCode"]

    def visit_roles(self) -> tuple[Actor | None, Actor | None]:
        """(visitor, host): Actor1 visits Actor2 in a 042, Actor1 hosts Actor2 in a 043."""
        if self.code == VISIT_MADE:
            visitor, host = self.actor1, self.actor2
        else:
            visitor, host = self.actor2, self.actor1
        if host is not None and visitor is not None and host.id == visitor.id:
            host = None
        return visitor, host


def _actor(fields: dict[str, str], n: int) -> Actor | None:
    name = fields[f"Actor{n}Name"].strip()
    ident = slugify(name) if name else None
    if ident is None:
        return None
    kind_code = fields[f"Actor{n}Type1Code"]
    kind = "gov" if kind_code in GOV_TYPES else "org" if kind_code in ORG_TYPES else None
    return Actor(ident, name, kind)


def _place(fields: dict[str, str]) -> dict[str, str] | None:
    """Where the action happened, as an ISO place; None when the country is unknown."""
    country = iso_from_fips(fields["ActionGeo_CountryCode"])
    if country is None:
        return None
    place = {"country": country}
    parts = [p.strip() for p in fields["ActionGeo_FullName"].split(",") if p.strip()]
    kind = fields["ActionGeo_Type"]
    if kind in CITY_GEO and len(parts) >= 2:
        place["city"] = cut(parts[0], 300)
        if len(parts) >= 3:
            place["region"] = cut(parts[1], 300)
    elif kind in REGION_GEO and len(parts) >= 2:
        place["region"] = cut(parts[0], 300)
    return place


def _digits(text: str, count: int) -> str:
    # strptime alone takes "2019101" as 2019-10-01: one-digit months and days are its own
    if len(text) != count or not (text.isascii() and text.isdigit()):
        raise ValueError(f"{text!r} is not {count} digits")
    return text


def _day(text: str) -> str:
    return dt.datetime.strptime(_digits(text, 8), "%Y%m%d").date().isoformat()


def _time(text: str) -> str:
    return dt.datetime.strptime(_digits(text, 14), "%Y%m%d%H%M%S").strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def parse_row(line: int, text: str) -> Row | Unusable:
    cells = text.rstrip("\r").split("\t")
    if len(cells) != len(COLUMNS):
        return Unusable([f"expected {len(COLUMNS)} tab-separated columns, found {len(cells)}"],
                        cells[0].strip() or None)
    fields = dict(zip(COLUMNS, (c.strip() for c in cells), strict=True))
    ident = fields["GLOBALEVENTID"] or None
    try:
        occurred = _day(fields["SQLDATE"])
    except ValueError:
        return Unusable([f"SQLDATE: {fields['SQLDATE']!r} is not a YYYYMMDD date"], ident)
    try:
        added = _time(fields["DATEADDED"])
    except ValueError:
        return Unusable([f"DATEADDED: {fields['DATEADDED']!r} is not a YYYYMMDDHHMMSS time"],
                        ident)
    actor1, actor2 = _actor(fields, 1), _actor(fields, 2)
    if actor1 is None and actor2 is None:
        return Unusable(["no actors: Actor1Name and Actor2Name are both empty or unusable"],
                        ident)
    return Row(line, fields, occurred, added, actor1, actor2, _place(fields))


def _is_visit(row: Row) -> bool:
    return row.code in (VISIT_MADE, VISIT_HOSTED) and row.visit_roles()[0] is not None \
        and row.place is not None


def _summary(rows: list[Row]) -> str:
    first = rows[0]
    label = cameo.label(first.code) or "unknown code"
    ids = " and ".join(r.id for r in rows)
    return (f"CAMEO {first.code} ({label}) in GDELT event {ids}, "
            f"added upstream {first.fields['DATEADDED']}")


def _envelope(ident: str, event_type: str, subject: str, row: Row,
              data: dict[str, Any]) -> dict[str, Any]:
    return {"specversion": "1.0", "id": ident, "source": SOURCE, "type": event_type,
            "subject": subject, "occurred": row.occurred, "time": row.time,
            "gdeltadded": row.fields["DATEADDED"], "data": data}


def _catalog_extras(rows: list[Row]) -> dict[str, Any]:
    extras: dict[str, Any] = {"cameo": rows[0].code, "summary": _summary(rows)}
    sources = urls(r.fields["SOURCEURL"] for r in rows)  # each one URL, commas and all
    if sources:
        extras["sources"] = sources
    return extras


def visit(*sides: Row) -> dict[str, Any]:
    """One `site.visited` from one row, or from both rows of a mirrored pair (042 first)."""
    rows = sorted(sides, key=lambda r: r.code != VISIT_MADE)
    made = rows[0]
    visitor, host = made.visit_roles()
    assert visitor is not None and made.place is not None  # _is_visit checked both
    data: dict[str, Any] = {"visitor": visitor.ref(), "place": made.place}
    if host is not None:
        data["host"] = host.ref()
    ident = "+".join(r.id for r in rows)
    return _envelope(ident, "site.visited", visitor.id, made, {**data, **_catalog_extras(rows)})


def convert(row: Row) -> dict[str, Any]:
    """The event for one row that is not part of a mirrored visit."""
    code = row.code
    if _is_visit(row):
        return visit(row)
    consult = code.startswith("04") and code not in (VISIT_MADE, VISIT_HOSTED)
    if (consult or code == MOU) and row.actor1 and row.actor2 and row.actor1.id != row.actor2.id:
        data: dict[str, Any] = {"parties": [row.actor1.ref(), row.actor2.ref()]}
        if row.place is not None:
            data["place"] = row.place
        event_type = "mou.signed" if code == MOU else "meeting.held"
        return _envelope(row.id, event_type, row.actor1.id, row,
                         {**data, **_catalog_extras([row])})
    return vendor(row)


def vendor(row: Row) -> dict[str, Any]:
    """`x-gdelt.<code>`: the row's non-empty fields, plus what a timeline shows."""
    subject = row.actor1 or row.actor2
    assert subject is not None
    label = cameo.label(row.code) or f"CAMEO {row.code}"
    names = " → ".join(a.name for a in (row.actor1, row.actor2) if a is not None)
    data: dict[str, Any] = {k: v for k, v in row.fields.items() if v}
    data["headline"] = cut(f"{names}: {label}", 300)
    if row.code.isdigit() and 2 <= len(row.code) <= 4:
        data["cameo"] = row.code
    if row.place is not None:
        data["place"] = row.place
    sources = urls([row.fields["SOURCEURL"]])
    if sources:
        data["sources"] = sources
    return _envelope(row.id, f"x-gdelt.{row.code.lower()}", subject.id, row, data)


def mirrored_pairs(rows: list[Row]) -> dict[int, int]:
    """Pairs of rows (by index, both ways) that code one visit from its two sides.

    Same SQLDATE, same visitor and host, one 042 and one 043; among several
    candidates, one with the same action location first, else in file order."""
    made: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    hosted: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        visitor, host = row.visit_roles() if _is_visit(row) else (None, None)
        if visitor is None or host is None:
            continue
        key = (row.occurred, visitor.id, host.id)
        (made if row.code == VISIT_MADE else hosted)[key].append(index)
    pairs: dict[int, int] = {}
    for key, sides in made.items():
        others = hosted.get(key, [])
        for index in sides:
            if not others:
                break
            where = rows[index].fields["ActionGeo_FullName"]
            same = [o for o in others if rows[o].fields["ActionGeo_FullName"] == where]
            chosen = (same or others)[0]
            others.remove(chosen)
            pairs[index], pairs[chosen] = chosen, index
    return pairs


def events(text: str) -> Items:
    """(line number, CloudEvent dict or Unusable) for every row, in file order."""
    parsed: list[tuple[int, Row | Unusable]] = [
        (number, parse_row(number, line))
        # Only \n ends a row: str.splitlines() would also split at U+2028 in a field.
        for number, line in enumerate(text.split("\n"), start=1) if line.strip()
    ]
    rows = [item for _, item in parsed if isinstance(item, Row)]
    pairs = mirrored_pairs(rows)
    index = 0
    for number, item in parsed:
        if isinstance(item, Unusable):
            yield number, item
            continue
        partner = pairs.get(index)
        if partner is None:
            yield number, convert(item)
        elif partner > index:  # the later row of the pair is merged into this visit
            yield number, visit(item, rows[partner])
        index += 1
