"""How a rebuild's held members are cut into script calls (projections/deferred.py)."""

from __future__ import annotations

from typing import Any

from projections import deferred


def test_each_call_is_bounded_and_every_timeline_arrives_sorted(monkeypatch: Any) -> None:
    monkeypatch.setattr(deferred, "CALL_MEMBERS", 10)
    taken = {"all": {f"m{i:03d}" for i in range(25, 0, -1)}, "topic:ai": {"b", "a"},
             "place:PL": {"z"}}
    calls = list(deferred._calls(taken))
    received: dict[str, list[str]] = {}
    for call in calls:
        names, parts = call[0::2], call[1::2]
        assert sum(map(len, parts)) < 2 * 10  # a last part may take a call past 10
        for name, part in zip(names, parts, strict=True):
            received.setdefault(name, []).extend(part)
    assert received == {name: sorted(held) for name, held in taken.items()}
    assert len(calls) == 3
