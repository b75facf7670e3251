"""The v1 catalog (DESIGN 3.2, 3.3): every type's schema, with field paths in errors."""

from __future__ import annotations

import copy
from typing import Any

import msgspec
import pytest

from events import catalog as c
from events.catalog import decode_data, is_known, is_vendor, schema_version, view_vendor
from events.errors import EventValidationError
from events.refs import EntityRef, Money, Place
from events.upcast import upcast

LGAI = {"id": "lg-ai-research", "name": "LG AI Research", "kind": "org"}
JAX = {"id": "jax", "name": "The Jackson Laboratory", "kind": "org"}
KOO = {"id": "koo-kwang-mo", "name": "Koo Kwang-mo", "kind": "person"}
LG = {"id": "lg", "name": "LG Group"}

VALID: dict[str, dict[str, Any]] = {
    "mou.signed": {"parties": [LGAI, JAX]},
    "contract.concluded": {
        "parties": [LGAI, JAX],
        "title": "Main contract",
        "value": {"amount": 1000000, "currency": "USD"},
        "follows": "demo-mou-lgai-jax",
    },
    "collaboration.launched": {
        "parties": [LGAI, JAX],
        "title": "joint AI R&D",
        "goals": ["drug discovery"],
    },
    "site.visited": {
        "visitor": KOO,
        "place": {"country": "PL", "region": "Lower Silesia", "city": "Wroclaw", "site": "plant"},
        "host": LG,
        "purpose": "ABC business review",
    },
    "meeting.held": {"parties": [LG, JAX], "purpose": "talks"},
    "investment.announced": {
        "investor": LG,
        "amount": {"amount": 3.6e12, "currency": "KRW"},
        "area": "AI",
        "horizon": "2026",
    },
    "acquisition.announced": {
        "acquirer": LG,
        "target": {"id": "acme", "name": "Acme"},
        "value": {"amount": 0, "currency": "EUR"},
        "status": "pending",
    },
    "award.received": {"recipient": LGAI, "award": "top 5", "venue": "NY", "rank": 5, "of": 163},
    "solution.deployed": {
        "provider": LGAI,
        "client": {"id": "lg-chem", "name": "LG Chem"},
        "application": "material discovery",
    },
    "event.corrected": {
        "target": "demo-mou-lgai-jax",
        "reason": "wrong month",
        "occurred": "2023-11",
    },
    "event.retracted": {"target": "demo-mou-lgai-jax", "reason": "never happened"},
}

MINIMAL: dict[str, dict[str, Any]] = {
    "mou.signed": {"parties": [LGAI, JAX]},
    "contract.concluded": {"parties": [LGAI, JAX]},
    "collaboration.launched": {"parties": [LGAI, JAX], "title": "t"},
    "site.visited": {"visitor": {"id": "koo-kwang-mo"}, "place": {"country": "US"}},
    "meeting.held": {"parties": [{"id": "a"}, {"id": "b"}]},
    "investment.announced": {"investor": {"id": "lg"}},
    "acquisition.announced": {"acquirer": {"id": "a"}, "target": {"id": "b"}},
    "award.received": {"recipient": {"id": "a"}, "award": "x"},
    "solution.deployed": {"provider": {"id": "a"}, "client": {"id": "b"}, "application": "x"},
    "event.corrected": {"target": "e1", "reason": "r", "data": {}},
    "event.retracted": {"target": "e1", "reason": "r"},
}

CLASSES = {
    **c.CATALOG,
    c.CORRECTED: c.EventCorrected,
    c.RETRACTED: c.EventRetracted,
}


def _error(event_type: str, data: Any) -> tuple[str, str]:
    with pytest.raises(EventValidationError) as info:
        decode_data(event_type, data)
    assert len(info.value.errors) == 1
    error = info.value.errors[0]
    return error.path, error.message


def test_catalog_lists_every_v1_type() -> None:
    assert set(VALID) == set(CLASSES) == set(MINIMAL)
    assert set(c.SCHEMA_VERSIONS) == set(VALID)


@pytest.mark.parametrize("event_type", sorted(VALID))
def test_valid_example_is_accepted(event_type: str) -> None:
    value = decode_data(event_type, copy.deepcopy(VALID[event_type]))
    assert type(value) is CLASSES[event_type]
    for name, given in VALID[event_type].items():
        assert msgspec.to_builtins(getattr(value, name)) == given


@pytest.mark.parametrize("event_type", sorted(MINIMAL))
def test_minimal_example_is_accepted(event_type: str) -> None:
    assert type(decode_data(event_type, MINIMAL[event_type])) is CLASSES[event_type]


REQUIRED = [
    (t, field)
    for t, fields in {
        "mou.signed": ["parties"],
        "contract.concluded": ["parties"],
        "collaboration.launched": ["parties", "title"],
        "site.visited": ["visitor", "place"],
        "meeting.held": ["parties"],
        "investment.announced": ["investor"],
        "acquisition.announced": ["acquirer", "target"],
        "award.received": ["recipient", "award"],
        "solution.deployed": ["provider", "client", "application"],
        "event.corrected": ["target", "reason"],
        "event.retracted": ["target", "reason"],
    }.items()
    for field in fields
]


@pytest.mark.parametrize(("event_type", "field"), REQUIRED)
def test_missing_required_field_is_named(event_type: str, field: str) -> None:
    data = {k: v for k, v in VALID[event_type].items() if k != field}
    path, message = _error(event_type, data)
    assert path == f"data.{field}"
    assert "missing required field" in message and field in message


@pytest.mark.parametrize("event_type", sorted(VALID))
def test_unknown_field_is_rejected_and_named(event_type: str) -> None:
    path, message = _error(event_type, {**VALID[event_type], "colour": "red"})
    assert path == "data.colour"
    assert "unknown field" in message


@pytest.mark.parametrize("event_type", sorted(c.CATALOG))
def test_common_fields_are_accepted_on_every_type(event_type: str) -> None:
    data = {
        **VALID[event_type],
        "headline": "H",
        "summary": "S" * 4000,
        "topics": ["ai", "bio", "cleantech"],
        "place": {"country": "US", "city": "New York"},
        "cameo": "057",
        "sources": ["https://example.com/a", "http://example.org/b?c=d"],
    }
    value = decode_data(event_type, data)
    assert value.headline == "H"
    assert value.topics == ["ai", "bio", "cleantech"]
    assert value.place == Place(country="US", city="New York")
    assert value.cameo == "057"
    assert len(value.sources) == 2


@pytest.mark.parametrize("event_type", [c.CORRECTED, c.RETRACTED])
def test_amendments_do_not_take_common_fields(event_type: str) -> None:
    path, _ = _error(event_type, {**VALID[event_type], "topics": ["ai"]})
    assert path == "data.topics"


@pytest.mark.parametrize(
    ("event_type", "change", "path"),
    [
        ("mou.signed", {"parties": [{"name": "LG AI Research"}, JAX]}, "data.parties[0].id"),
        ("mou.signed", {"parties": [LGAI, {**JAX, "nickname": "x"}]}, "data.parties[1].nickname"),
        ("mou.signed", {"parties": [LGAI, {**JAX, "kind": "company"}]}, "data.parties[1].kind"),
        ("mou.signed", {"parties": [LGAI, {"id": "JAX"}]}, "data.parties[1].id"),
        ("mou.signed", {"parties": [LGAI, {"id": "jax\n"}]}, "data.parties[1].id"),
        ("mou.signed", {"parties": [LGAI, {"id": "-jax"}]}, "data.parties[1].id"),
        ("mou.signed", {"parties": [LGAI, {"id": "j" * 129}]}, "data.parties[1].id"),
        ("mou.signed", {"parties": [LGAI, {"id": "jax", "name": ""}]}, "data.parties[1].name"),
        ("mou.signed", {"parties": [LGAI]}, "data.parties"),
        ("mou.signed", {"parties": []}, "data.parties"),
        ("mou.signed", {"parties": "lg, jax"}, "data.parties"),
        ("mou.signed", {"parties": [LGAI, "jax"]}, "data.parties[1]"),
        ("mou.signed", {"title": ""}, "data.title"),
        ("mou.signed", {"title": "t" * 301}, "data.title"),
        ("mou.signed", {"headline": "h" * 301}, "data.headline"),
        ("mou.signed", {"summary": "s" * 4001}, "data.summary"),
        ("mou.signed", {"topics": ["AI"]}, "data.topics[0]"),
        ("mou.signed", {"topics": ["ai", "bio\n"]}, "data.topics[1]"),
        ("mou.signed", {"topics": "ai"}, "data.topics"),
        ("mou.signed", {"topics": [f"t{i}" for i in range(21)]}, "data.topics"),
        ("mou.signed", {"cameo": "5"}, "data.cameo"),
        ("mou.signed", {"cameo": "05a"}, "data.cameo"),
        ("mou.signed", {"cameo": 57}, "data.cameo"),
        ("mou.signed", {"sources": ["ftp://example.com"]}, "data.sources[0]"),
        ("mou.signed", {"sources": ["https://a b"]}, "data.sources[0]"),
        ("mou.signed", {"sources": ["https://" + "a" * 2041]}, "data.sources[0]"),
        ("mou.signed", {"place": {"city": "Seoul"}}, "data.place.country"),
        ("mou.signed", {"place": {"country": "ZZ"}}, "data.place.country"),
        ("mou.signed", {"place": {"country": "kr"}}, "data.place.country"),
        ("mou.signed", {"place": {"country": "KOR"}}, "data.place.country"),
        ("mou.signed", {"place": {"country": "KR", "street": "x"}}, "data.place.street"),
        ("contract.concluded", {"value": {"amount": -1, "currency": "USD"}}, "data.value.amount"),
        ("contract.concluded", {"value": {"amount": "1", "currency": "USD"}}, "data.value.amount"),
        ("contract.concluded", {"value": {"amount": 1, "currency": "XXX"}}, "data.value.currency"),
        ("contract.concluded", {"value": {"amount": 1, "currency": "usd"}}, "data.value.currency"),
        ("contract.concluded", {"value": {"amount": 1}}, "data.value.currency"),
        ("contract.concluded", {"value": {"currency": "USD"}}, "data.value.amount"),
        ("contract.concluded", {"value": {"amount": 1, "currency": "USD", "x": 1}}, "data.value.x"),
        ("contract.concluded", {"follows": "has space"}, "data.follows"),
        ("contract.concluded", {"follows": "id\n"}, "data.follows"),
        ("collaboration.launched", {"goals": ["ok", ""]}, "data.goals[1]"),
        ("collaboration.launched", {"goals": "one goal"}, "data.goals"),
        ("site.visited", {"visitor": {"id": "koo-kwang-mo", "kind": "human"}}, "data.visitor.kind"),
        ("site.visited", {"host": {"name": "LG"}}, "data.host.id"),
        ("site.visited", {"place": {"country": "XX"}}, "data.place.country"),
        ("site.visited", {"place": {"country": "PL", "city": ""}}, "data.place.city"),
        ("investment.announced", {"horizon": "by 2026"}, "data.horizon"),
        ("investment.announced", {"horizon": "2026-13"}, "data.horizon"),
        ("investment.announced", {"horizon": 2026}, "data.horizon"),
        (
            "investment.announced",
            {"amount": {"amount": 1, "currency": "KRX"}},
            "data.amount.currency",
        ),
        ("acquisition.announced", {"target": {"id": "Acme"}}, "data.target.id"),
        ("award.received", {"rank": 0}, "data.rank"),
        ("award.received", {"rank": "5"}, "data.rank"),
        ("award.received", {"rank": True}, "data.rank"),
        ("award.received", {"rank": 5.0}, "data.rank"),
        ("award.received", {"of": -163}, "data.of"),
        ("solution.deployed", {"application": ""}, "data.application"),
        ("solution.deployed", {"client": "lg-chem"}, "data.client"),
        ("event.corrected", {"target": "bad id"}, "data.target"),
        ("event.corrected", {"reason": ""}, "data.reason"),
        ("event.corrected", {"data": []}, "data.data"),
        ("event.retracted", {"reason": "r" * 4001}, "data.reason"),
    ],
)
def test_bad_values_are_rejected_with_their_path(
    event_type: str, change: dict[str, Any], path: str
) -> None:
    got, message = _error(event_type, {**VALID[event_type], **change})
    assert got == path
    assert message


def test_correction_needs_occurred_or_data() -> None:
    path, message = _error(c.CORRECTED, {"target": "e1", "reason": "r"})
    assert path == "data"
    assert "occurred" in message
    assert decode_data(c.CORRECTED, {"target": "e1", "reason": "r", "data": {"x": 1}}).data == {
        "x": 1
    }
    both = decode_data(c.CORRECTED, {"target": "e1", "reason": "r", "data": {}, "occurred": "2023"})
    assert both.occurred == "2023"


def test_data_must_be_an_object() -> None:
    for bad in ([], "x", None, 1):
        path, _ = _error("mou.signed", bad)
        assert path == "data"


def test_decode_data_prefix_is_configurable() -> None:
    with pytest.raises(EventValidationError) as info:
        decode_data("mou.signed", {"parties": [{"x": 1}, JAX]}, path="data.data")
    assert info.value.errors[0].path.startswith("data.data.parties[0]")


def test_validation_is_strict_about_types() -> None:
    # msgspec's lax mode would turn "5" into 5; the contract does not
    with pytest.raises(EventValidationError):
        decode_data("award.received", {"recipient": LGAI, "award": "a", "of": "163"})
    # integers are fine where a number is expected
    value = decode_data(
        "investment.announced", {"investor": LG, "amount": {"amount": 3, "currency": "KRW"}}
    )
    assert value.amount == Money(amount=3, currency="KRW")


@pytest.mark.parametrize(
    ("event_type", "roles"),
    [
        ("mou.signed", [("lg-ai-research", "party"), ("jax", "party")]),
        ("contract.concluded", [("lg-ai-research", "party"), ("jax", "party")]),
        ("collaboration.launched", [("lg-ai-research", "party"), ("jax", "party")]),
        ("site.visited", [("koo-kwang-mo", "visitor"), ("lg", "host")]),
        ("meeting.held", [("lg", "party"), ("jax", "party")]),
        ("investment.announced", [("lg", "investor")]),
        ("acquisition.announced", [("lg", "acquirer"), ("acme", "target")]),
        ("award.received", [("lg-ai-research", "recipient")]),
        ("solution.deployed", [("lg-ai-research", "provider"), ("lg-chem", "client")]),
    ],
)
def test_entities_and_roles(event_type: str, roles: list[tuple[str, str]]) -> None:
    value = decode_data(event_type, VALID[event_type])
    assert [(ref.id, role) for ref, role in value.entities()] == roles


def test_site_visit_without_host_names_only_the_visitor() -> None:
    value = decode_data("site.visited", MINIMAL["site.visited"])
    assert [(r.id, role) for r, role in value.entities()] == [("koo-kwang-mo", "visitor")]


def test_labels() -> None:
    assert EntityRef(id="jax", name="The Jackson Laboratory").label == "The Jackson Laboratory"
    assert EntityRef(id="jax").label == "jax"
    assert Place(country="US", city="New York", site="HQ").label == "HQ, New York, US"
    assert Place(country="PL").label == "PL"


def test_vendor_types() -> None:
    assert is_vendor("x-acme.launched")
    assert is_vendor("x-acme-corp.product_shipped")
    for bad in (
        "acme.launched",
        "x-Acme.launched",
        "x-acme",
        "x-.launched",
        "x-acme.",
        "x-acme.a.b",
    ):
        assert not is_vendor(bad), bad
    assert is_known("mou.signed") and is_known("event.retracted") and is_known("x-acme.launched")
    assert not is_known("mou.sign") and not is_known("")


def test_vendor_data_is_free_form_and_exposes_well_formed_common_fields() -> None:
    data = {"anything": [1, {"deep": True}], "headline": "Acme shipped", "topics": ["ai"]}
    value = decode_data("x-acme.shipped", data)
    assert isinstance(value, c.VendorData)
    assert value.headline == "Acme shipped"
    assert value.topics == ["ai"]
    assert value.entities() == []
    # malformed common fields are shown as is, never rejected, and each is judged alone
    assert view_vendor({"topics": "not a list", "headline": "h"}) == c.VendorData(headline="h")
    assert view_vendor([1, 2]) == c.VendorData()
    mixed = view_vendor({"topics": ["AI"], "place": {"country": "US", "city": "Boston"},
                         "headline": "Acme launches X", "cameo": "nope"})
    assert mixed == c.VendorData(headline="Acme launches X",
                                 place=Place(country="US", city="Boston"))


def test_vendor_parties_are_entities_the_event_involves() -> None:
    data = {"parties": [{"id": "acme"}, {"id": "globex", "name": "Globex"}]}
    assert [(ref.id, role) for ref, role in view_vendor(data).entities()] == [
        ("acme", "party"), ("globex", "party")]
    # a vendor's own meaning of `parties` (not entity references) names nobody
    assert view_vendor({"parties": ["acme", "globex"]}).entities() == []


def test_schema_versions_and_upcast() -> None:
    for event_type in VALID:
        assert schema_version(event_type) == 1
    assert schema_version("x-acme.shipped") == c.VENDOR_SCHEMA_VERSION == 1
    data = {"parties": [LGAI, JAX]}
    assert upcast("mou.signed", 1, data) is data


def test_all_country_and_currency_codes_shape() -> None:
    from events.codes import COUNTRIES, CURRENCIES

    assert {"PL", "US", "CA", "ID", "KR"} <= COUNTRIES
    assert {"KRW", "USD", "EUR"} <= CURRENCIES
    assert all(len(code) == 2 and code.isupper() for code in COUNTRIES)
    assert all(len(code) == 3 and code.isupper() for code in CURRENCIES)


@pytest.mark.parametrize(
    ("event_type", "change", "path", "message"),
    [
        ("mou.signed", {"place": {"country": "ZZ"}}, "data.place.country",
         "'ZZ' is not an ISO 3166-1 alpha-2 country code (upper case)"),
        ("mou.signed", {"place": {"country": "kr"}}, "data.place.country",
         "'kr' is not an ISO 3166-1 alpha-2 country code (upper case)"),
        ("mou.signed", {"place": {"country": 82}}, "data.place.country",
         "Expected `str`, got `int`"),
        ("contract.concluded", {"value": {"amount": 1, "currency": "usd"}}, "data.value.currency",
         "'usd' is not an ISO 4217 currency code (upper case)"),
        ("mou.signed", {"place": {"country": "K" * 5000}}, "data.place.country",
         "the value is not an ISO 3166-1 alpha-2 country code (upper case)"),
        ("site.visited", {"visitor": {"id": "lg", "kind": "human"}}, "data.visitor.kind",
         "Invalid enum value 'human'"),
    ],
)
def test_codes_outside_their_list_are_named_with_the_rule(
    event_type: str, change: dict[str, Any], path: str, message: str
) -> None:
    assert _error(event_type, {**VALID[event_type], **change}) == (path, message)


def test_every_listed_code_is_accepted() -> None:
    from events.codes import COUNTRIES, CURRENCIES

    for country in COUNTRIES:
        decode_data("mou.signed", {**VALID["mou.signed"], "place": {"country": country}})
    for currency in CURRENCIES:
        decode_data("contract.concluded",
                    {**VALID["contract.concluded"], "value": {"amount": 1, "currency": currency}})
