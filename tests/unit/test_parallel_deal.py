"""How a replay's partitions are dealt to helper processes (services/audit/parallel.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.audit.parallel import deal


@given(st.dictionaries(st.integers(0, 63), st.integers(0, 10**6), max_size=64),
       st.integers(1, 8))
def test_every_partition_with_events_goes_to_exactly_one_group(
    heads: dict[int, int], groups: int
) -> None:
    dealt = deal(heads, groups)
    assert len(dealt) <= groups
    assert all(dealt)  # no empty group: each would start a process for nothing
    merged = [p for group in dealt for p in group]
    assert sorted(merged) == sorted(p for p, head in heads.items() if head)
    assert {p: h for group in dealt for p, h in group.items()} == {
        p: h for p, h in heads.items() if h}


@given(st.dictionaries(st.integers(0, 63), st.integers(1, 10**6), min_size=1, max_size=64),
       st.integers(2, 8))
def test_groups_differ_by_at_most_the_largest_partition(
    heads: dict[int, int], groups: int
) -> None:
    sizes = [sum(group.values()) for group in deal(heads, groups)]
    if len(sizes) > 1:
        assert max(sizes) - min(sizes) <= max(heads.values())


def test_eight_even_partitions_make_two_groups_of_four() -> None:
    assert [len(g) for g in deal(dict.fromkeys(range(8), 1000), 2)] == [4, 4]
