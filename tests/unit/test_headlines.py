"""Generated English headlines, one phrase per catalog type."""

from __future__ import annotations

from typing import Any

import pytest

from events import catalog
from events.catalog import decode_data
from events.headlines import headline

LGAI = {"id": "lg-ai-research", "name": "LG AI Research"}
JAX = {"id": "jax", "name": "The Jackson Laboratory"}
LG = {"id": "lg", "name": "LG Group"}


def make(event_type: str, data: dict[str, Any], subject: str = "lg-ai-research") -> str:
    return headline(event_type, subject, decode_data(event_type, data))


def test_mou_example_from_the_design() -> None:
    assert (
        make("mou.signed", {"parties": [LGAI, JAX]})
        == "LG AI Research and The Jackson Laboratory signed an MOU"
    )


def test_names_are_listed_in_english() -> None:
    three = [LGAI, JAX, LG]
    assert make("mou.signed", {"parties": three}) == (
        "LG AI Research, The Jackson Laboratory and LG Group signed an MOU"
    )
    four = [*three, {"id": "acme"}]
    assert make("meeting.held", {"parties": four}) == (
        "LG AI Research, The Jackson Laboratory, LG Group and acme met"
    )


def test_id_stands_in_for_a_missing_name() -> None:
    assert make("mou.signed", {"parties": [{"id": "lg-ai-research"}, JAX]}) == (
        "lg-ai-research and The Jackson Laboratory signed an MOU"
    )


@pytest.mark.parametrize(
    ("event_type", "data", "expected"),
    [
        (
            "contract.concluded",
            {"parties": [LGAI, JAX]},
            "LG AI Research and The Jackson Laboratory concluded a contract",
        ),
        (
            "contract.concluded",
            {"parties": [LGAI, JAX], "value": {"amount": 1.5e9, "currency": "USD"}},
            "LG AI Research and The Jackson Laboratory concluded a contract of 1.5 billion USD",
        ),
        (
            "collaboration.launched",
            {"parties": [LGAI, JAX], "title": "joint AI R&D"},
            "LG AI Research and The Jackson Laboratory launched joint AI R&D",
        ),
        (
            "site.visited",
            {
                "visitor": {"id": "koo-kwang-mo", "name": "Koo Kwang-mo"},
                "place": {"country": "PL", "city": "Wroclaw", "site": "ABC business sites"},
            },
            "Koo Kwang-mo visited ABC business sites, Wroclaw, PL",
        ),
        (
            "site.visited",
            {"visitor": {"id": "koo-kwang-mo"}, "place": {"country": "ID"}},
            "koo-kwang-mo visited ID",
        ),
        ("meeting.held", {"parties": [LG, JAX]}, "LG Group and The Jackson Laboratory met"),
        (
            "investment.announced",
            {
                "investor": LG,
                "amount": {"amount": 3_600_000_000_000, "currency": "KRW"},
                "area": "AI",
            },
            "LG Group announced an investment of 3.6 trillion KRW in AI",
        ),
        ("investment.announced", {"investor": LG}, "LG Group announced an investment"),
        (
            "investment.announced",
            {"investor": LG, "amount": {"amount": 250_000, "currency": "EUR"}},
            "LG Group announced an investment of 250,000 EUR",
        ),
        (
            "investment.announced",
            {"investor": LG, "amount": {"amount": 2_000_000, "currency": "USD"}},
            "LG Group announced an investment of 2 million USD",
        ),
        (
            "acquisition.announced",
            {"acquirer": LG, "target": {"id": "acme", "name": "Acme"}},
            "LG Group announced the acquisition of Acme",
        ),
        (
            "award.received",
            {"recipient": LGAI, "award": "3 awards"},
            "LG AI Research received 3 awards",
        ),
        (
            "solution.deployed",
            {
                "provider": LGAI,
                "client": {"id": "lg-uplus", "name": "LG Uplus"},
                "application": "customer review analysis",
            },
            "LG AI Research deployed customer review analysis at LG Uplus",
        ),
    ],
)
def test_generated_headlines(event_type: str, data: dict[str, Any], expected: str) -> None:
    assert make(event_type, data) == expected


@pytest.mark.parametrize("event_type", sorted(catalog.CATALOG))
def test_every_catalog_type_has_its_own_phrase(event_type: str) -> None:
    generic = f"lg-ai-research: {event_type.partition('.')[0]} {event_type.rpartition('.')[2]}"
    examples = {
        "mou.signed": {"parties": [LGAI, JAX]},
        "contract.concluded": {"parties": [LGAI, JAX]},
        "collaboration.launched": {"parties": [LGAI, JAX], "title": "t"},
        "site.visited": {"visitor": LG, "place": {"country": "US"}},
        "meeting.held": {"parties": [LGAI, JAX]},
        "investment.announced": {"investor": LG},
        "acquisition.announced": {"acquirer": LG, "target": JAX},
        "award.received": {"recipient": LGAI, "award": "a"},
        "solution.deployed": {"provider": LGAI, "client": LG, "application": "x"},
    }
    text = make(event_type, examples[event_type])
    assert text and text != generic


def test_publisher_headline_wins() -> None:
    data = {"parties": [LGAI, JAX], "headline": "LG AI Research teams up with JAX"}
    assert make("mou.signed", data) == "LG AI Research teams up with JAX"


def test_vendor_types_get_a_generic_headline_or_their_own() -> None:
    plain = decode_data("x-acme.shipped", {"sku": 1})
    assert headline("x-acme.shipped", "acme", plain) == "acme: acme shipped"
    given = decode_data("x-acme.shipped", {"headline": "Acme shipped 10k units"})
    assert headline("x-acme.shipped", "acme", given) == "Acme shipped 10k units"


def test_amendments_get_a_generic_headline() -> None:
    retraction = decode_data("event.retracted", {"target": "e1", "reason": "r"})
    assert headline("event.retracted", "lg", retraction) == "lg: event retracted"
    correction = decode_data("event.corrected", {"target": "e1", "reason": "r", "occurred": "2023"})
    assert headline("event.corrected", "lg", correction) == "lg: event corrected"
