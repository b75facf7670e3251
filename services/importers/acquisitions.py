"""The Crunchbase-derived "Tech Giants acquisitions" CSV into `acquisition.announced` events.

Rules (README, "Import"):
- "Deal announced on" is D/MM/YYYY (day first) and becomes `occurred` (day
  precision). A date that is not D/MM/YYYY, not a real day, or whose year is
  impossible (before 1970 or after the current year: the file has 1905s from a
  broken spreadsheet conversion) rejects the row with the reason.
- "Acquiring Company" and "Acquired Company" become the acquirer and target
  entities (slugified ids, the names kept); the acquirer is the subject. A row
  whose two companies are one entity is rejected.
- "Price" such as "$1,800,000,000" becomes `value` in USD; "Undisclosed
  amount" gives no value; anything else rejects the row.
- "Status" (Complete, Pending) becomes `status`; "Terms" goes into `summary`;
  "News Link" and "Acquisition Profile" URLs into `sources`.
- From the acquired-companies file, joined on "Acquisitions ID" when present:
  the target's HQ city, region and country become `place`, its market
  categories `topics`. A country name that maps to no ISO code (such as
  "#N/A") leaves the place out.
- The event id is the slugified "Acquisitions ID" ("Adobe Systems acquired
  Aldus Corp in 1994" -> "adobe-systems-acquired-aldus-corp-in-1994"), so a
  re-run appends nothing.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from services.importers.common import (
    BadFile,
    Items,
    csv_records,
    cut,
    event_id,
    slugify,
    url_list,
    urls,
)
from services.importers.countries import iso_from_name
from services.publishing import Unusable

SOURCE = "urn:dataset:tech-giants-acquisitions"
FIRST_YEAR = 1970
REQUIRED = ("Acquisitions ID", "Acquired Company", "Acquiring Company", "Deal announced on",
            "Price")
_DATE = re.compile(r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})")
_PRICE = re.compile(r"\$([0-9]{1,3}(?:,[0-9]{3})*|[0-9]+)(?:\.([0-9]+))?")
_UNDISCLOSED = re.compile(r"undisclosed( amount)?", re.IGNORECASE)


def parse_date(text: str, this_year: int) -> str:
    """D/MM/YYYY -> YYYY-MM-DD; ValueError naming what is wrong."""
    match = _DATE.fullmatch(text)
    if not match:
        raise ValueError(f"Deal announced on: {text!r} is not a D/MM/YYYY date")
    day, month, year = (int(g) for g in match.groups())
    if not FIRST_YEAR <= year <= this_year:
        raise ValueError(f"Deal announced on: impossible year {year} in {text!r} "
                         f"(before {FIRST_YEAR} or after {this_year})")
    try:
        return dt.date(year, month, day).isoformat()
    except ValueError as exc:
        raise ValueError(f"Deal announced on: {text!r} is not a real day ({exc})") from None


def parse_price(text: str) -> dict[str, Any] | None:
    """'$1,800,000,000' -> {amount, currency USD}; undisclosed or empty -> None."""
    if not text or _UNDISCLOSED.fullmatch(text):
        return None
    match = _PRICE.fullmatch(text.replace(" ", ""))
    if not match:
        raise ValueError(f"Price: {text!r} is neither '$1,234' nor 'Undisclosed amount'")
    whole, fraction = match.groups()
    amount = float(f"{whole.replace(',', '')}.{fraction or '0'}")
    return {"amount": int(amount) if amount.is_integer() else amount, "currency": "USD"}


# A company bought more than once lists each deal: "3Com acquired Palm in 1997, HP acquired
# Palm in 2010". Split only after a deal's year: a company's own name may hold ", ".
_DEALS = re.compile(r"(?<= in [0-9]{4}), ")


def companies_by_id(text: str) -> dict[str, dict[str, str]]:
    """The acquired-companies file, by each "Acquisitions ID" its row lists."""
    found = {}
    for line, row in csv_records(text, ("Acquisitions ID",), "the companies file"):
        if isinstance(row, Unusable):  # its deals would import without a place, unsaid
            raise BadFile(f"the companies file, line {line}: {row.reasons[0]}")
        # "#N/A" is a spreadsheet's missing value, not a city or a market category
        company = {k: "" if v == "#N/A" else v for k, v in row.items()}
        for deal in _DEALS.split(row.get("Acquisitions ID", "")):
            if deal:
                found[deal] = company
    return found


def place_of(company: dict[str, str]) -> dict[str, str] | None:
    country = iso_from_name(company.get("Country (HQ)", ""))
    if country is None:
        return None
    place = {"country": country}
    for field, column in (("city", "City (HQ)"), ("region", "State / Region (HQ)")):
        if company.get(column):
            place[field] = cut(company[column], 300)
    return place


def topics_of(company: dict[str, str]) -> list[str]:
    found: list[str] = []
    for category in company.get("Market Categories", "").split(","):
        slug = slugify(category, 64)
        if slug and slug not in found:
            found.append(slug)
    return found[:20]


def _ref(name: str) -> dict[str, str] | None:
    ident = slugify(name)
    return {"id": ident, "name": cut(name, 300), "kind": "org"} if ident else None


def convert(row: dict[str, str], company: dict[str, str] | None,
            this_year: int) -> dict[str, Any] | Unusable:
    ident = event_id(slugify(row["Acquisitions ID"]) or row["Acquisitions ID"])
    reasons: list[str] = []
    acquirer, target = _ref(row["Acquiring Company"]), _ref(row["Acquired Company"])
    if acquirer is None:
        reasons.append(f"Acquiring Company: {row['Acquiring Company']!r} gives no entity id")
    if target is None:
        reasons.append(f"Acquired Company: {row['Acquired Company']!r} gives no entity id")
    if acquirer and target and acquirer["id"] == target["id"]:
        reasons.append(f"Acquiring Company and Acquired Company are one entity "
                       f"({acquirer['id']!r})")
    occurred = value = None
    try:
        occurred = parse_date(row["Deal announced on"], this_year)
    except ValueError as exc:
        reasons.append(str(exc))
    try:
        value = parse_price(row["Price"])
    except ValueError as exc:
        reasons.append(str(exc))
    if reasons or acquirer is None or target is None:
        return Unusable(reasons, ident)
    data: dict[str, Any] = {"acquirer": acquirer, "target": target}
    if value is not None:
        data["value"] = value
    if row.get("Status") and row["Status"].lower() != "undisclosed":
        data["status"] = cut(row["Status"], 300)
    if row.get("Terms") and row["Terms"].lower() != "undisclosed":
        data["summary"] = f"Terms: {cut(row['Terms'], 3900)}"
    sources = urls([*url_list(row.get("News Link", "")), row.get("Acquisition Profile", "")])
    if sources:
        data["sources"] = sources
    if company is not None:
        place = place_of(company)
        if place is not None:
            data["place"] = place
        topics = topics_of(company)
        if topics:
            data["topics"] = topics
    return {"specversion": "1.0", "id": ident, "source": SOURCE, "type": "acquisition.announced",
            "subject": acquirer["id"], "occurred": occurred, "data": data}


def events(text: str, companies_text: str | None = None, this_year: int | None = None) -> Items:
    """(line number, CloudEvent dict or Unusable) for every acquisition row.

    `companies_text` is the acquired-companies CSV (optional); `this_year`
    bounds the possible years (default: the current year)."""
    year = this_year or dt.date.today().year
    companies = companies_by_id(companies_text) if companies_text else {}
    for line, row in csv_records(text, REQUIRED, "the acquisitions file"):
        if isinstance(row, Unusable):
            yield line, row
        else:
            yield line, convert(row, companies.get(row["Acquisitions ID"]), year)
