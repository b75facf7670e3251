"""Importers as pure functions: file text in, (line, event or reason) out. No server;
every event an importer yields must pass the envelope's validation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from events.codes import COUNTRIES
from events.envelope import validate_event
from events.errors import EventValidationError
from services.importers import acquisitions, gdelt, timelinejs
from services.importers import csv as csv_import
from services.importers.common import BadFile, slugify, url_list, urls
from services.importers.countries import FIPS_TO_ISO, iso_from_fips, iso_from_name
from services.importers.registry import companies_beside
from services.publishing import Unusable

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def by_line(items: Any) -> dict[int, Any]:
    return dict(items)


def valid(item: Any) -> dict[str, Any]:
    assert isinstance(item, dict), item
    validate_event(item)
    return item


# --- shared pieces --------------------------------------------------------------------


@pytest.mark.parametrize(("name", "slug"), [
    ("LG AI Research", "lg-ai-research"), ("THE EU", "the-eu"), ("[24]7", "24-7"),
    ("AT&T", "at-t"), ("Berkäna Wireless", "berkana-wireless"), ("???", None), ("", None),
    ("x" * 200, "x" * 128),
])
def test_slugify_gives_entity_ids(name: str, slug: str | None) -> None:
    assert slugify(name) == slug


def test_fips_table_maps_to_real_iso_codes() -> None:
    assert set(FIPS_TO_ISO.values()) <= COUNTRIES
    assert len(FIPS_TO_ISO) > 250
    cases = {"UK": "GB", "JA": "JP", "RS": "RU", "SF": "ZA", "GM": "DE", "CH": "CN",
             "KS": "KR", "KN": "KP", "AS": "AU", "AU": "AT", "BO": "BY", "EI": "IE",
             "KV": "XK", "GZ": "PS", "US": "US"}
    assert {f: iso_from_fips(f) for f in cases} == cases
    assert iso_from_fips("OS") is None  # oceans: no country
    assert iso_from_fips("") is None


def test_country_names_map_to_iso() -> None:
    assert [iso_from_name(n) for n in ("United States", "Great Britain", "The Netherlands",
                                       "Korea", "Czech Republic", "germany", "#N/A")] == [
        "US", "GB", "NL", "KR", "CZ", "DE", None]


# --- GDELT ----------------------------------------------------------------------------

GDELT = FIXTURES / "gdelt" / "sample.export.tsv"


def test_gdelt_rules_on_the_fixture() -> None:
    items = list(gdelt.events(GDELT.read_text()))
    rejected = {line: item for line, item in items if isinstance(item, Unusable)}
    found = {item["id"]: valid(item) for _, item in items if isinstance(item, dict)}
    # 14 rows: two mirrored visit pairs on 2019-09-24 and one on 2018-10-24 merge into 3
    # visits, 3 rows are unusable, the other 5 rows are one event each.
    assert len(items) == 11 and len(found) == 8
    assert sorted(rejected) == [12, 13, 14]
    assert "no actors" in rejected[12].reasons[0]
    assert "SQLDATE" in rejected[13].reasons[0]
    assert "61 tab-separated columns, found 60" in rejected[14].reasons[0]

    kl = found["881990854+881990835"]
    assert kl["type"] == "site.visited" and kl["occurred"] == "2018-10-24"
    assert kl["data"]["visitor"]["id"] == "kuala-lumpur"
    assert kl["data"]["host"] == {"id": "tourism-industry", "name": "TOURISM INDUSTRY",
                                  "kind": "org"}
    assert kl["data"]["place"] == {"country": "MY", "city": "Kuala Lumpur",
                                   "region": "Kuala Lumpur"}
    assert kl["time"] == "2019-10-24T14:30:00Z" and kl["gdeltadded"] == "20191024143000"
    # of two mirrored pairs on one day, each 042 pairs with the 043 at its own place
    riyadh, london = found["881990868+881990873"], found["881990869+881990874"]
    assert riyadh["data"]["place"]["country"] == "SA"
    assert london["data"]["place"] == {"country": "GB"}
    assert riyadh["subject"] == "united-kingdom"
    assert riyadh["data"]["host"]["id"] == "saudi-arabia"

    mou = found["881991218"]
    assert mou["type"] == "mou.signed" and mou["subject"] == "producer"
    assert [p["id"] for p in mou["data"]["parties"]] == ["producer", "france"]
    assert mou["data"]["cameo"] == "057"
    assert mou["data"]["place"] == {"country": "US", "city": "Des Moines", "region": "Iowa"}

    meeting = found["881990888"]
    assert meeting["type"] == "meeting.held"
    assert meeting["data"]["place"] == {"country": "US", "region": "Utah"}

    lonely = found["881990834"]  # an agreement with one known actor is no MOU
    assert lonely["type"] == "x-gdelt.057" and lonely["subject"] == "the-eu"
    assert lonely["data"]["Actor2Name"] == "THE EU"
    assert lonely["data"]["DATEADDED"] == "20191024143000"
    assert lonely["data"]["place"]["country"] == "BY"
    assert lonely["data"]["headline"] == "THE EU: Sign formal agreement"
    assert found["881990842"]["type"] == "x-gdelt.010"
    assert found["881992112"]["type"] == "x-gdelt.043"  # a visit with no place


def test_gdelt_is_deterministic() -> None:
    text = GDELT.read_text()
    assert list(gdelt.events(text)) == list(gdelt.events(text))


def gdelt_row(**cells: str) -> str:
    """One row of the GDELT fixture with some cells replaced."""
    first = GDELT.read_text().split("\n")[0].split("\t")
    for name, value in cells.items():
        first[gdelt.COLUMNS.index(name)] = value
    return "\t".join(first)


@pytest.mark.parametrize("code", ["057", "010"])  # a catalog type and a vendor type
def test_a_gdelt_source_url_with_a_comma_is_kept_whole(code: str) -> None:
    """SOURCEURL is one URL, and a real one holds a comma (../shared/data, event
    881992564)."""
    url = ("http://www.statecollege.com/news/local-news/"
           "beaver-canyon-properties-sell-for-102-million,1481527/")
    cells = (FIXTURES / "gdelt" / "sample.export.tsv").read_text().split("\n")[8].split("\t")
    cells[26], cells[60] = code, url  # EventCode, SOURCEURL
    [(_, event)] = list(gdelt.events("\t".join(cells)))
    assert event["data"]["sources"] == [url]


def test_a_gdelt_date_of_seven_digits_is_rejected_not_guessed() -> None:
    [(_, item)] = list(gdelt.events(gdelt_row(SQLDATE="2019101")))
    assert isinstance(item, Unusable) and "SQLDATE" in item.reasons[0]
    [(_, item)] = list(gdelt.events(gdelt_row(DATEADDED="2019102414300")))
    assert isinstance(item, Unusable) and "DATEADDED" in item.reasons[0]


def test_a_line_separator_inside_a_gdelt_field_does_not_split_its_row() -> None:
    row = gdelt_row(SOURCEURL="https://example.org/a\u2028b")
    items = list(gdelt.events(row + "\n" + row.replace("\u2028", "\x0c")))
    assert [line for line, _ in items] == [1, 2]
    assert all(isinstance(item, dict) for _, item in items)


# --- acquisitions ---------------------------------------------------------------------

ACQ = FIXTURES / "acquisitions" / "sample_acquisitions.csv"
COMPANIES = FIXTURES / "acquisitions" / "sample_acquired_companies.csv"


@pytest.mark.parametrize(("text", "day"), [
    ("1/02/2012", "2012-02-01"), ("31/08/1994", "1994-08-31"), ("10/08/2014", "2014-08-10")])
def test_acquisition_dates_are_day_first(text: str, day: str) -> None:
    assert acquisitions.parse_date(text, 2025) == day


@pytest.mark.parametrize(("text", "reason"), [
    ("28/06/1905", "impossible year 1905"), ("1/01/2026", "impossible year 2026"),
    ("4//17/2013", "not a D/MM/YYYY date"), ("29/02/2011", "not a real day"),
    ("", "not a D/MM/YYYY date")])
def test_impossible_acquisition_dates_say_why(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        acquisitions.parse_date(text, 2025)


def test_prices_become_money() -> None:
    assert acquisitions.parse_price("$1,800,000,000") == {"amount": 1_800_000_000,
                                                          "currency": "USD"}
    assert acquisitions.parse_price("$2.5") == {"amount": 2.5, "currency": "USD"}
    assert acquisitions.parse_price("Undisclosed amount") is None
    assert acquisitions.parse_price("Undisclosed Amount") is None
    with pytest.raises(ValueError, match="Price"):
        acquisitions.parse_price("about 5 million")


def test_acquisitions_on_the_fixture() -> None:
    items = by_line(acquisitions.events(ACQ.read_text(), COMPANIES.read_text(), this_year=2025))
    rejected = {line: i.reasons[0] for line, i in items.items() if isinstance(i, Unusable)}
    assert sorted(rejected) == [4, 5, 7, 11, 12, 13]
    assert "impossible year 1905" in rejected[4]
    assert "not a D/MM/YYYY" in rejected[5]
    assert "one entity ('stumbleupon')" in rejected[7]
    assert "impossible year 2999" in rejected[11]
    assert "Price" in rejected[12]
    assert "not a real day" in rejected[13]
    accelio = valid(items[2])
    assert accelio["id"] == "adobe-systems-acquired-accelio-corporation-in-2002"
    assert accelio["subject"] == "adobe" and accelio["occurred"] == "2002-04-15"
    assert accelio["data"]["target"] == {"id": "accelio-corporation",
                                         "name": "Accelio Corporation", "kind": "org"}
    assert accelio["data"]["place"] == {"country": "CA", "city": "Ottawa", "region": "Ontario"}
    assert "value" not in accelio["data"]
    relateiq = valid(items[6])
    assert relateiq["data"]["value"] == {"amount": 390_000_000, "currency": "USD"}
    assert "place" not in relateiq["data"] and "topics" not in relateiq["data"]  # "#N/A"
    lovefilm = valid(items[8])
    assert lovefilm["data"]["place"]["country"] == "GB"
    assert lovefilm["data"]["topics"] == ["games"]
    optier = valid(items[9])  # year column says 2104, the deal date 2014
    assert optier["occurred"] == "2014-08-10" and optier["data"]["status"] == "Pending"
    berkana = valid(items[10])
    assert berkana["data"]["target"]["id"] == "berkana-wireless"
    assert berkana["data"]["target"]["name"] == "Berkäna Wireless"


def test_news_links_holding_commas_are_kept_whole() -> None:
    """The file separates its links with ", ", and real links hold commas (line 111)."""
    link = ("http://www.thefreelibrary.com/AMERICA+ONLINE+INC.+ACQUIRES+JOHNSON-GRACE,"
            "+TECHNOLOGY+BRINGS+RICH...-a017923353")
    other = "https://example.com/a,b"
    text = ("Acquisitions ID,Acquired Company,Acquiring Company,Deal announced on,Price,"
            "News Link\nAOL acquired Johnson-Grace in 1996,Johnson-Grace,AOL,1/02/1996,"
            f'Undisclosed amount,"{link}, {other}"\n')
    [(_, event)] = list(acquisitions.events(text))
    assert event["data"]["sources"] == [link, other]


def test_acquisitions_without_companies_have_no_places() -> None:
    items = by_line(acquisitions.events(ACQ.read_text(), None, this_year=2025))
    assert "place" not in valid(items[2])["data"]


def test_a_company_bought_twice_is_joined_to_each_deal() -> None:
    companies = ('Acquisitions ID,City (HQ),Country (HQ)\n'
                 '"3Com acquired Palm in 1997, HP acquired Palm in 2010",Sunnyvale,'
                 'United States\n"Foo, Inc. acquired Bar in 2001",Oslo,Norway\n')
    found = acquisitions.companies_by_id(companies)
    assert sorted(found) == ["3Com acquired Palm in 1997", "Foo, Inc. acquired Bar in 2001",
                             "HP acquired Palm in 2010"]
    assert found["HP acquired Palm in 2010"]["City (HQ)"] == "Sunnyvale"


def test_a_companies_row_with_more_cells_than_its_header_refuses_the_file() -> None:
    with pytest.raises(BadFile, match="companies file, line 3"):
        acquisitions.companies_by_id("Acquisitions ID,City (HQ)\na,b\nc,d,e\n")


def test_companies_file_is_found_beside_the_acquisitions_file() -> None:
    assert companies_beside(ACQ) == COMPANIES
    assert companies_beside(COMPANIES) is None


def test_acquisitions_file_without_its_columns_is_refused() -> None:
    with pytest.raises(BadFile, match="Deal announced on"):
        list(acquisitions.events("Acquisitions ID,Price\nx,$1\n"))


# --- TimelineJS -----------------------------------------------------------------------

TLJS = FIXTURES / "timelinejs" / "sample.json"


@pytest.mark.parametrize(("date", "partial"), [
    ({"year": "2023"}, "2023"), ({"year": 2023, "month": 12}, "2023-12"),
    ({"year": "2023", "month": "8", "day": "9"}, "2023-08-09"),
    ({"year": "602"}, "0602"), ({"year": "2023", "month": "", "day": ""}, "2023"),
    ({"year": "1978", "month": "3", "day": "1", "hour": "10"}, "1978-03-01"),
    ({"year": 2023.0, "month": 5.0}, "2023-05"),  # whole numbers written as floats
])
def test_timelinejs_dates_keep_their_precision(date: dict[str, Any], partial: str) -> None:
    assert timelinejs.partial_date(date, "start_date") == partial


def test_timelinejs_fixture() -> None:
    items = by_line(timelinejs.events(TLJS.read_text(), "sample"))
    assert len(items) == 9
    mou = valid(items[1])
    assert (mou["id"], mou["type"], mou["subject"], mou["occurred"]) == (
        "mou-jax", "x-timelinejs.entry", "lg-abc-story", "2023-12")
    assert mou["source"] == "urn:timelinejs:lg-abc-story"
    assert mou["data"]["headline"] == "LG AI Research and JAX sign an MOU"
    assert mou["data"]["summary"] == "Partnership on AI and genomics."
    assert mou["data"]["group"] == "partnerships"
    assert valid(items[2])["occurred"] == "2023-08-14/2023-08-18"
    assert valid(items[3])["occurred"] == "2026"
    assert valid(items[4])["occurred"] == "2023/2024-02"
    assert valid(items[5])["occurred"] == "0602/0629"
    assert items[2]["id"].startswith("slide-")
    assert "year -500" in items[6].reasons[0]
    assert "start_date" in items[7].reasons[0]
    assert "month 13" in items[8].reasons[0]
    with pytest.raises(EventValidationError, match="ends before it starts"):
        validate_event(items[9])  # left to the envelope's own validation


def test_timelinejs_our_export_of_an_empty_timeline_imports_nothing() -> None:
    """Its "No entries" slide, dated only because TimelineJS needs one, is no event."""
    from services.exports import timelinejs as export

    assert list(timelinejs.events(export.render("topic", "none", []).decode())) == []


def test_timelinejs_text_keeps_a_bare_less_than_sign() -> None:
    """In HTML `< ` is text: only `<` before a letter, `/`, `!` or `?` opens a tag."""
    assert timelinejs.plain("Revenue < $5M but <b>more</b> than > $1M") == \
        "Revenue < $5M but more than > $1M"


def test_timelinejs_ids_are_stable() -> None:
    text = TLJS.read_text()
    assert [i for _, i in timelinejs.events(text)] == [i for _, i in timelinejs.events(text)]


@pytest.mark.parametrize(("date", "reason"), [
    ({"year": 2023.5}, "year 2023.5 is not a whole number"),
    ({"year": "2023", "month": "May"}, "month 'May' is not a whole number"),
    ({"year": "9" * 5000}, "year '" + "9" * 38 + "… is not a whole number"),
])
def test_a_timelinejs_date_that_is_not_whole_numbers_is_named(
    date: dict[str, Any], reason: str,
) -> None:
    with pytest.raises(ValueError) as refused:
        timelinejs.occurred_of({"start_date": date})
    assert str(refused.value).endswith(reason)


def test_a_timelinejs_end_date_of_empty_strings_is_no_end_date() -> None:
    slide = {"start_date": {"year": "2023", "month": "4"},
             "end_date": {"year": "", "month": "", "day": " "}}
    assert timelinejs.occurred_of(slide) == "2023-04"
    with pytest.raises(ValueError, match="end_date: has no year"):
        timelinejs.occurred_of({**slide, "end_date": {"year": "", "month": "5"}})


def test_not_a_timelinejs_file_is_refused() -> None:
    with pytest.raises(BadFile):
        list(timelinejs.events(json.dumps({"title": {}})))
    with pytest.raises(BadFile):
        list(timelinejs.events("{not json"))


# --- CSV ------------------------------------------------------------------------------

CSV = FIXTURES / "csv" / "sample.csv"


def test_csv_mapping_on_the_fixture() -> None:
    items = by_line(csv_import.events(CSV.read_text(), "urn:csv:sample"))
    assert sorted(items) == [2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14]  # row 7 spans two lines
    mou = valid(items[2])
    assert mou["data"]["parties"] == [{"id": "lg-ai-research", "name": "LG AI Research"},
                                      {"id": "jax", "name": "The Jackson Laboratory"}]
    assert (mou["occurred"], mou["data"]["topics"], mou["data"]["place"]) == (
        "2023-12?", ["ai", "bio"], {"country": "US"})
    visit = valid(items[3])
    assert visit["data"]["visitor"]["id"] == "koo-kwang-mo"
    assert visit["data"]["host"]["id"] == "lg"
    assert visit["data"]["place"] == {"country": "PL", "city": "Wroclaw"}
    assert valid(items[4])["data"]["headline"] == 'Koo visits "ABC" sites, USA and Canada'
    assert items[4]["time"] == "2024-02-11T09:00:00+09:00"
    award = valid(items[5])
    assert (award["data"]["award"], award["data"]["rank"], award["data"]["recipient"]["id"]) == (
        "top 5 in stock-return prediction", 5, "lg-ai-research")
    invest = valid(items[6])
    assert invest["source"] == "urn:csv:sample"  # empty source column: the default
    assert invest["data"]["amount"] == {"amount": 3600000000000, "currency": "KRW"}
    assert valid(items[7])["data"]["headline"] == "A note\non two lines"
    reasons = {line: items[line].reasons[0] for line in (9, 10, 11, 13)}
    assert "parties" in reasons[9] and "data: not JSON" in reasons[10]
    assert "country: required" in reasons[11] and "at most 2" in reasons[13]
    for line, path in ((12, "occurred"), (14, "data.target")):  # rows the envelope refuses
        with pytest.raises(EventValidationError) as refused:
            validate_event(items[line])
        assert [e.path for e in refused.value.errors] == [path]


def test_csv_with_an_unknown_or_missing_column_is_refused() -> None:
    with pytest.raises(BadFile, match="unknown column"):
        list(csv_import.events("id,type,subject,occurred,colour\n1,x-a.b,s,2024,red\n"))
    with pytest.raises(BadFile, match="occurred"):
        list(csv_import.events("id,type,subject\n1,x-a.b,s\n"))
    # A column named twice: a row would keep the last cell only, "First" lost unseen.
    with pytest.raises(BadFile, match="headline more than once"):
        list(csv_import.events("id,type,subject,occurred,headline,headline\n"
                               "d1,x-a.b,s,2024,First,\n"))


def test_a_csv_row_with_more_cells_than_the_header_is_rejected_at_its_line() -> None:
    text = "id,type,subject,occurred,headline\n\n\nm1,x-a.b,a,2023,Hello, world\n" \
           "m2,x-a.b,a,2023,\"Hello, world\"\n"
    items = by_line(csv_import.events(text))
    assert sorted(items) == [4, 5]  # the lines they are on, blank lines counted
    assert isinstance(items[4], Unusable) and "6 cells" in items[4].reasons[0]
    assert valid(items[5])["data"]["headline"] == "Hello, world"


@pytest.mark.parametrize(("text", "reason"), [
    ('id,type,subject,occurred,headline\nm1,x-a.b,a,2023,"oops\nm2,x-a.b,a,2023,fine\n',
     "line 2: a quote opened in this record is never closed"),
    # the reader notices only once the open quote has swallowed 131,072 characters
    ('id,type,subject,occurred,headline\nm0,x-a.b,a,2023,ok\nm1,x-a.b,a,2023,"oops\n'
     + "m2,x-a.b,a,2023,fine\n" * 10_000,
     "line 3: a value longer than 131,072 characters, or a quote opened in this record"),
    ("id,type,subject,occurred,headline\nm1,x-a.b,a,2023," + "x" * 200_000 + "\n",
     "line 2: a value longer than 131,072 characters"),
    ('id,type,subject,occurred,headline\nm1,x-a.b,a,2023,"a"b\n',
     "line 2: ',' expected after '\"'"),
])
def test_a_broken_csv_refuses_the_file_naming_the_line(text: str, reason: str) -> None:
    with pytest.raises(BadFile, match=reason):
        list(csv_import.events(text))


def test_a_spreadsheet_csv_with_padded_names_blank_rows_and_a_trailing_comma() -> None:
    text = ("id, type ,subject,occurred,parties,\n"
            "s1,mou.signed,a,2023,a;b;,\n"
            ",,,,,\n"
            "   \n"
            "s2,mou.signed,a,2023,a;b,stray\n")
    items = by_line(csv_import.events(text))
    assert sorted(items) == [2, 5]  # the rows of blank cells are no records
    assert valid(items[2])["data"]["parties"] == [{"id": "a"}, {"id": "b"}]
    assert isinstance(items[5], Unusable)
    assert items[5].reasons == ["column 6 holds a value, but the header gives it no name"]


def test_a_field_set_by_a_column_and_by_the_data_column_rejects_the_row() -> None:
    header = "id,type,subject,occurred,country,headline,parties,data\n"
    rows = ['c1,x-a.b,a,2023,US,,,"{""place"": {""country"": ""US"", ""city"": ""NYC""}}"',
            'c2,x-a.b,a,2023,,Hi,,"{""headline"": ""Hello""}"',
            'c3,site.visited,a,2023,,,a;b,"{""host"": {""id"": ""c""}}"',
            'c4,site.visited,a,2023,US,,a,"{""host"": {""id"": ""c""}}"']
    items = by_line(csv_import.events(header + "\n".join(rows) + "\n"))
    reasons = {line: item.reasons for line, item in items.items() if isinstance(item, Unusable)}
    assert reasons == {
        2: ["country: sets data.place, which the data column sets too; give it once"],
        3: ["headline: sets data.headline, which the data column sets too; give it once"],
        4: ["parties: sets data.host, which the data column sets too; give it once"]}
    assert valid(items[5])["data"]["host"] == {"id": "c"}  # one party: the visitor only


def test_a_csv_row_may_leave_occurred_empty_when_it_gives_time() -> None:
    text = ("id,type,subject,occurred,time\n"
            "t1,x-a.b,a,,2024-02-11T09:00:00+09:00\n"
            "t2,x-a.b,a,,\n")
    items = by_line(csv_import.events(text))
    assert validate_event(items[2]).occurred.text == "2024-02-11"
    with pytest.raises(EventValidationError) as refused:
        validate_event(items[3])
    assert [(e.path, e.message) for e in refused.value.errors] == [
        ("occurred", "required when `time` is absent")]


def test_a_url_list_closed_by_a_comma_keeps_its_last_url_whole() -> None:
    """As in the real acquisitions file: the Reuters link was stored with the comma."""
    listed = "http://a.example/x/, http://b.example/y?feed=RSS, "
    assert urls(url_list(listed)) == ["http://a.example/x/", "http://b.example/y?feed=RSS"]
    assert urls(url_list("http://c.example/deal-102-million,1481527/")) == [
        "http://c.example/deal-102-million,1481527/"]  # a comma inside is the URL's
