"""The apply script's payload (projections/writes.py): what a rebuild holds back."""

from __future__ import annotations

from typing import Any

import msgspec

from projections import writes
from projections.writes import HOLD_FROM, Fresh, encode_batch, fresh_entries, merge_fresh, vacated


def record(sequence: int, timelines: list[str], old: str = "",
           old_timelines: list[str] | None = None) -> list[Any]:
    """An encode_change record with the fields encode_batch and vacated read."""
    fields: list[Any] = [""] * (writes.NAME_STAMP + 1)
    for index, value in ((writes.SEQUENCE, sequence), (writes.KEY, f"k{sequence}"),
                         (writes.MEMBER, f"m{sequence}"), (writes.DOC, "{}"),
                         (writes.TIMELINES, timelines), (writes.OLD_MEMBER, old),
                         (writes.OLD_TIMELINES, old_timelines or []), (writes.SPAN, 0),
                         (writes.NAMES, []), (writes.ALIAS, f"a{sequence}" if old else "")):
        fields[index] = value
    return fields


def payload_members(payload: bytes) -> dict[str, list[str]]:
    return {name: found for name, *found in msgspec.msgpack.decode(payload)[2]}


def test_a_rebuild_holds_the_members_of_timelines_a_batch_adds_many_to() -> None:
    batch = [record(i, ["all", f"entity:e{i}"]) for i in range(1, HOLD_FROM + 1)]
    held: dict[str, list[str]] = {}
    sent = payload_members(encode_batch(batch, held))
    assert held == {"all": [f"m{i}" for i in range(1, HOLD_FROM + 1)]}
    assert sent == {f"entity:e{i}": [f"m{i}"] for i in range(1, HOLD_FROM + 1)}
    assert payload_members(encode_batch(batch)) == {"all": held["all"], **sent}


def test_a_timeline_below_the_threshold_goes_straight_in(monkeypatch: Any) -> None:
    monkeypatch.setattr(writes, "HOLD_FROM", 3)
    held: dict[str, list[str]] = {}
    sent = payload_members(encode_batch([record(1, ["all"]), record(2, ["all"])], held))
    assert (held, sent) == ({}, {"all": ["m1", "m2"]})


def test_vacated_names_each_earlier_member_an_amendment_removes() -> None:
    batch = [record(1, ["all"]), record(2, ["all", "topic:ai"], old="m0",
                                        old_timelines=["all", "topic:bio"])]
    assert vacated(batch) == {("all", "m0"), ("topic:bio", "m0")}


def test_the_feed_learns_which_timelines_a_batch_took_an_entry_off() -> None:
    moved = record(2, ["all", "entity:b"], old="m0", old_timelines=["all", "entity:a"])
    moved_again = record(3, ["all", "entity:c"], old="m2", old_timelines=["all", "entity:b"])
    moved_again[writes.KEY] = moved[writes.KEY]
    fresh = fresh_entries([record(1, ["all"]), moved])
    assert (fresh["k1"].left, fresh["k2"].left) == ([], ["entity:a"])
    # Moved twice in one batch, or in two applied one after the other and published
    # together: its followers only ever saw it where it was before the first.
    assert fresh_entries([moved, moved_again])["k2"].left == ["entity:a"]
    merged = fresh_entries([moved])
    merge_fresh(merged, fresh_entries([moved_again]))
    assert merged["k2"] == Fresh("{}", ["all", "entity:c"], ["all", "entity:a"])
    assert merged["k2"].left == ["entity:a"]
