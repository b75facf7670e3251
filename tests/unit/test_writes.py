"""The apply script's payload (projections/writes.py): what a rebuild holds back."""

from __future__ import annotations

from typing import Any

import msgspec

from projections import writes
from projections.writes import HOLD_FROM, encode_batch, vacated


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
