"""Turning raw read-model differences into readable ones (pure)."""

from __future__ import annotations

import json

import msgspec

from projections import asof
from services.audit.compare import (
    Difference,
    FieldDifference,
    describe_hash,
    describe_member,
    describe_score,
    field_differences,
    field_of,
)

KEY = "urn:t\x1fe-1"
MEMBER = "2023120112024021109300100012" + "0" + "urn:t\x1fe-1\x1f20231231ambu.signed"


def test_documents_differ_field_by_field() -> None:
    live = {"headline": "A", "version": 1, "data": {"x": 1}}
    rebuilt = {"headline": "B", "version": 1, "data": {"x": 2}, "status": "active"}
    assert field_differences(live, rebuilt) == {
        "data": FieldDifference({"x": 1}, {"x": 2}), "headline": FieldDifference("A", "B"),
        "status": FieldDifference(None, "active")}


def test_histories_differ_by_version_and_field() -> None:
    live = [{"id": "e-1", "reason": None}, {"id": "fix", "reason": "typo"}]
    rebuilt = [{"id": "e-1", "reason": None}, {"id": "fix", "reason": "date"}, {"id": "r"}]
    assert field_differences(live, rebuilt) == {
        "[1].reason": FieldDifference("typo", "date"), "[2]": FieldDifference(None, {"id": "r"})}
    assert field_differences("x", 3) == {"": FieldDifference("x", 3)}


def test_an_entry_difference_names_source_id_and_fields() -> None:
    diff = describe_hash("entry", KEY, "differs", json.dumps({"headline": "A"}),
                         json.dumps({"headline": "B"}))
    assert msgspec.to_builtins(diff) == {
        "scope": "entry", "problem": "differs", "key": "urn:t e-1", "source": "urn:t",
        "id": "e-1", "fields": {"headline": {"live": "A", "rebuilt": "B"}}}
    assert field_of(diff) == KEY


def test_hash_scopes_name_what_they_hold() -> None:
    old = describe_hash("superseded-version", KEY + "\x1f17", "missing-live", None, "{}")
    assert (old.key, old.rebuilt, old.live) == ("urn:t e-1 @17", "{}", None)
    assert field_of(old) == KEY + "\x1f17"
    span = describe_hash("span", "entity:acme", "differs", "3", "30")
    assert (span.timeline, span.live, span.rebuilt, field_of(span)) == (
        "entity:acme", "3", "30", "entity:acme")
    name = describe_hash("name", "acme", "extra-live", "ACME", None)
    assert (name.key, field_of(name)) == ("acme", "acme")
    garbled = describe_hash("entry", KEY, "differs", "not json", "{}")
    assert garbled.fields == {"": FieldDifference("not json", {})}


def test_member_differences_name_timeline_and_entry() -> None:
    diff = describe_member("timeline", "entity:acme", "missing-live", MEMBER)
    assert (diff.key, diff.source, diff.id, diff.timeline, diff.rebuilt) == (
        "entity:acme: urn:t e-1", "urn:t", "e-1", "entity:acme", MEMBER)
    ever = MEMBER + asof.suffix("20240211093001000120", asof.OPEN, 7)
    shown = describe_member("as-of-index", "all", "extra-live", ever)
    assert shown.live == "version of sequence 7: held 20240211093001000120 .. now"
    assert isinstance(shown, Difference) and shown.rebuilt is None


def test_a_score_difference_names_the_member_and_both_scores() -> None:
    diff = describe_score("timeline", "entity:acme", MEMBER, 5.0, 0.0)
    assert msgspec.to_builtins(diff) == {
        "scope": "timeline", "problem": "differs", "key": "entity:acme: urn:t e-1",
        "source": "urn:t", "id": "e-1", "timeline": "entity:acme",
        "fields": {"score": {"live": 5.0, "rebuilt": 0.0}}}
