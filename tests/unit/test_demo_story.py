"""The DESIGN section-1 story shipped as demo data: valid, complete and sensibly dated."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from events import catalog
from events.dates import Precision, sort_key
from events.envelope import NewEvent, validate_event
from events.headlines import headline

STORY = Path(__file__).resolve().parents[2] / "services" / "demo_story.jsonl"
SOURCE = "urn:timeline:demo:korean-business-daily"


def _load() -> list[NewEvent]:
    lines = [line for line in STORY.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [validate_event(json.loads(line)) for line in lines]


EVENTS = _load()
BY_ID = {e.id: e for e in EVENTS}


def _of_type(event_type: str) -> list[NewEvent]:
    return [e for e in EVENTS if e.type == event_type]


def _involved(e: NewEvent) -> set[str]:
    return {e.subject} | {ref.id for ref, _ in e.payload.entities()}


def test_every_line_is_a_valid_cloudevent_from_one_source() -> None:
    assert len(EVENTS) >= 15
    assert len(BY_ID) == len(EVENTS), "ids must be unique"
    for e in EVENTS:
        assert e.attrs["specversion"] == "1.0"
        assert e.source == SOURCE
        assert e.id.startswith("demo-")
        assert e.type in catalog.CATALOG
        assert "occurred" in e.attrs
        assert e.expected_version is None


def test_every_entity_ref_has_a_name_and_a_kind() -> None:
    for e in EVENTS:
        refs = e.payload.entities()
        assert refs, e.id
        for ref, _ in refs:
            assert ref.name, (e.id, ref.id)
            assert ref.kind, (e.id, ref.id)


def test_the_same_entity_always_carries_the_same_name() -> None:
    names: dict[str, set[str]] = {}
    for e in EVENTS:
        for ref, _ in e.payload.entities():
            names.setdefault(ref.id, set()).add(ref.name or "")
    assert all(len(v) == 1 for v in names.values()), names
    assert names["lg"] == {"LG Group"}
    assert names["lg-ai-research"] == {"LG AI Research"}
    assert names["jax"] == {"The Jackson Laboratory"}
    assert names["koo-kwang-mo"] == {"Koo Kwang-mo"}


def test_inferred_years_are_marked_uncertain() -> None:
    for e in EVENTS:
        assert e.occurred.qualifier in ("?", "%"), e.id


def test_site_visits_by_the_chairman() -> None:
    visits = _of_type("site.visited")
    assert sorted(v.payload.place.country for v in visits) == ["CA", "ID", "PL", "US"]
    months = {v.payload.place.country: v.occurred.earliest.strftime("%Y-%m") for v in visits}
    assert months == {"PL": "2023-07", "US": "2023-08", "CA": "2023-08", "ID": "2023-09"}
    for v in visits:
        assert v.subject == "lg"
        assert v.payload.visitor.id == "koo-kwang-mo"
        assert v.payload.visitor.kind == "person"
        assert v.payload.host is not None and v.payload.host.id == "lg"
        assert set(v.payload.topics) == {"ai", "bio", "cleantech"}
        assert v.occurred.precision == Precision.MONTH
        assert {"lg", "koo-kwang-mo"} <= _involved(v)


def test_mou_then_contract_then_joint_research() -> None:
    (mou,) = _of_type("mou.signed")
    (contract,) = _of_type("contract.concluded")
    (launch,) = _of_type("collaboration.launched")
    for e in (mou, contract, launch):
        assert {ref.id for ref in e.payload.parties} == {"lg-ai-research", "jax"}
        assert e.subject == "lg-ai-research"
    assert (mou.occurred.earliest, mou.occurred.latest) == (
        dt.date(2023, 12, 1),
        dt.date(2023, 12, 31),
    )
    assert contract.payload.follows == mou.id
    assert contract.payload.follows in BY_ID
    assert mou.occurred.latest < contract.occurred.earliest
    assert contract.occurred.earliest.strftime("%Y-%m") == "2024-02"
    assert launch.occurred.precision == Precision.DAY
    assert launch.occurred.earliest == dt.date(2024, 2, 11)
    assert sort_key(mou.occurred) < sort_key(contract.occurred) < sort_key(launch.occurred)
    assert headline(mou.type, mou.subject, mou.payload) == (
        "LG AI Research and The Jackson Laboratory signed an MOU"
    )
    jax = next(ref for ref in mou.payload.parties if ref.id == "jax")
    assert jax.kind == "org"


def test_joint_research_goals_cover_the_story() -> None:
    (launch,) = _of_type("collaboration.launched")
    goals = " | ".join(launch.payload.goals).lower()
    for needle in (
        "alzheimer",
        "exaone",
        "genome",
        "pathology",
        "treatment-effect",
        "drug discovery",
    ):
        assert needle in goals, needle
    assert "alzheimer" in launch.payload.title.lower() and "cancer" in launch.payload.title.lower()
    assert {"ai", "bio"} <= set(launch.payload.topics)


def test_investment_plan() -> None:
    (plan,) = _of_type("investment.announced")
    assert plan.payload.investor.id == "lg"
    assert plan.payload.amount.amount == 3.6e12
    assert plan.payload.amount.currency == "KRW"
    assert plan.payload.area == "AI"
    assert plan.payload.horizon == "2026"
    assert "3.6 trillion KRW" in headline(plan.type, plan.subject, plan.payload)


def test_solutions_at_six_affiliates() -> None:
    deployed = _of_type("solution.deployed")
    apps = {d.payload.client.id: d.payload.application.lower() for d in deployed}
    assert set(apps) == {
        "lg-display",
        "lg-innotek",
        "lg-chem",
        "lg-energy-solution",
        "lg-uplus",
        "lg-hh",
    }
    assert "oled" in apps["lg-display"]
    assert "patent" in apps["lg-innotek"] and "inspection" in apps["lg-innotek"]
    assert "drug" in apps["lg-chem"] and "material" in apps["lg-chem"]
    assert "electrolyte" in apps["lg-energy-solution"]
    assert "review" in apps["lg-uplus"]
    assert "design" in apps["lg-hh"] and "cosmetic" in apps["lg-hh"]
    for d in deployed:
        assert d.payload.provider.id == "lg-ai-research"
        assert d.subject == "lg-ai-research"


def test_awards_in_new_york() -> None:
    awards = _of_type("award.received")
    assert len(awards) == 2
    for a in awards:
        assert a.payload.recipient.id == "lg-ai-research"
        assert a.occurred.earliest.strftime("%Y-%m") == "2023-11"
        assert (a.payload.place.country, a.payload.place.city) == ("US", "New York")
    ranked = [a for a in awards if a.payload.rank is not None]
    assert [(a.payload.rank, a.payload.of) for a in ranked] == [(5, 163)]
    assert "stock" in ranked[0].payload.award.lower()
    assert any("3 awards" in a.payload.award for a in awards)


def test_story_fills_the_expected_timelines() -> None:
    timelines: dict[str, list[str]] = {}
    for e in EVENTS:
        for entity in _involved(e):
            timelines.setdefault(entity, []).append(e.type)
    assert timelines["lg"].count("site.visited") == 4
    assert "investment.announced" in timelines["lg"]
    assert {"mou.signed", "contract.concluded", "collaboration.launched"} <= set(timelines["jax"])
    assert timelines["lg-ai-research"].count("solution.deployed") == 6
    topics: dict[str, int] = {}
    for e in EVENTS:
        for t in e.payload.topics:
            topics[t] = topics.get(t, 0) + 1
    assert set(topics) == {"ai", "bio", "cleantech"}
    assert topics["cleantech"] >= 5  # four visits plus battery electrolytes


def test_lines_are_plain_json_objects() -> None:
    for line in STORY.read_text(encoding="utf-8").splitlines():
        raw: Any = json.loads(line)
        assert isinstance(raw, dict)
        assert "\n" not in line
