"""The chain checker on synthetic stream entries: each tamper case named by kind,
partition and sequence, with no server."""

from __future__ import annotations

import hashlib
from typing import Any

from events.codec import GENESIS, canonical_bytes
from services.audit.chain import PartitionChain, Problem
from services.log.keys import partition_of

Entry = tuple[bytes, dict[bytes, bytes]]


def chain(count: int, partition: int = 3, subjects: list[str] | None = None) -> list[Entry]:
    """`count` entries of a well-formed partition, as XRANGE returns them (with
    `subjects`, each entry's in turn)."""
    entries, prev = [], GENESIS
    for sequence in range(1, count + 1):
        about = {"subject": subjects[(sequence - 1) % len(subjects)]} if subjects else {}
        body = canonical_bytes({"id": f"e-{sequence}", "source": "urn:t", "data": {"n": sequence},
                                "partition": partition, "sequence": sequence, **about})
        prev = hashlib.sha256(prev + body).digest()
        entries.append((f"{sequence}-0".encode(), {b"event": body, b"hash": prev.hex().encode()}))
    return entries


def as_sent(entries: list[Entry]) -> list[list[Any]]:
    """The entries as XRANGE sends them, before redis-py makes dicts of the fields."""
    return [[i, [part for pair in fields.items() for part in pair]] for i, fields in entries]


def state(checker: PartitionChain) -> tuple[Any, ...]:
    return (checker.problems, checker.omitted, checker.length, checker.last_sequence,
            checker.head, checker.expected, checker.prev, checker.after_hole,
            checker.hashes_at)


def check(entries: list[Entry], partition: int = 3, head: tuple[int, str] | None = None,
          wanted: frozenset[int] = frozenset(), partitions: int | None = None) -> PartitionChain:
    """Check `entries` one by one (`feed`) and as raw pages (`feed_page`, in pages of 7
    to cross page boundaries): both must end in the same state."""
    if head is None and entries:  # the head the append path would have left
        ours = [(int(i.split(b"-")[0]), f[b"hash"].decode()) for i, f in entries
                if int(i.split(b"-")[0]) < 10**6]
        head = ours[-1]
    checker, paged = (PartitionChain(partition, wanted, partitions),
                      PartitionChain(partition, wanted, partitions))
    for stream_id, fields in entries:
        checker.feed(stream_id, fields)
    raw = as_sent(entries)
    for start in range(0, len(raw), 7):
        paged.feed_page(raw[start:start + 7])
    for each in (checker, paged):
        each.finish(*(head or (None, None)))
    assert state(paged) == state(checker)
    return checker


def kinds(checker: PartitionChain) -> list[tuple[str, int | None, int | None]]:
    return [(p.kind, p.partition, p.sequence) for p in checker.problems]


def test_a_clean_chain_has_no_problem_and_reports_its_head() -> None:
    entries = chain(50)
    checker = check(entries, wanted=frozenset({20}))
    assert checker.ok and checker.length == 50 and checker.last_sequence == 50
    assert checker.head == entries[-1][1][b"hash"].decode()
    assert checker.hashes_at == {20: entries[19][1][b"hash"].decode()}


def test_an_edited_entry_is_one_hash_mismatch_at_its_sequence() -> None:
    entries = chain(10)
    sid, fields = entries[4]
    entries[4] = (sid, {**fields, b"event": fields[b"event"].replace(b'"n":5', b'"n":6')})
    assert kinds(check(entries)) == [("hash-mismatch", 3, 5)]


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link() -> None:
    entries = chain(10)
    sid, fields = entries[4]
    edited = fields[b"event"].replace(b'"n":5', b'"n":6')
    prev = bytes.fromhex(entries[3][1][b"hash"].decode())
    entries[4] = (sid, {b"event": edited, b"hash": hashlib.sha256(prev + edited).hexdigest()
                        .encode()})
    checker = check(entries)
    assert kinds(checker) == [("hash-mismatch", 3, 6)]


def test_a_deleted_middle_entry_is_a_gap_then_a_broken_link() -> None:
    entries = chain(10)
    del entries[4]
    checker = check(entries)
    assert kinds(checker) == [("sequence-gap", 3, 5), ("broken-link", 3, 6)]
    assert "sequence 5 is missing" in checker.problems[0].message


def test_several_deleted_entries_are_one_gap() -> None:
    entries = chain(10)
    del entries[2:5]
    assert kinds(check(entries)) == [("sequence-gap", 3, 3), ("broken-link", 3, 6)]


def test_foreign_entries_are_named_and_do_not_cascade() -> None:
    entries = chain(5)
    foreign = [
        (b"1712345678901-0", {b"note": b"hello"}),  # XADD * with other fields
        (b"1712345678902-0", {b"event": b"{}", b"hash": b"00" * 32}),  # our fields, bad event
    ]
    checker = check(entries + foreign)
    assert kinds(checker) == [("foreign-entry", 3, 1712345678901),
                              ("foreign-entry", 3, 1712345678902)]
    assert "not ['event', 'hash']" in checker.problems[0].message


def test_an_event_placed_at_another_sequence_or_partition_is_foreign() -> None:
    entries = chain(4)
    other = chain(4, partition=5)
    entries[3] = (b"4-0", other[3][1])  # partition 5's event in partition 3's stream
    head = (3, entries[2][1][b"hash"].decode())
    assert kinds(check(entries, head=head)) == [("foreign-entry", 3, 4)]
    assert "partition 5 sequence 4" in check(entries, head=head).problems[0].message


def test_an_undecodable_entry_in_place_keeps_the_next_link_checkable() -> None:
    entries = chain(6)
    entries[2] = (b"3-0", {b"event": b"not json", b"hash": entries[2][1][b"hash"]})
    assert kinds(check(entries)) == [("foreign-entry", 3, 3)]


def test_a_bad_hash_field_is_foreign() -> None:
    entries = chain(3)
    entries[2] = (b"3-0", {**entries[2][1], b"hash": b"XYZ"})
    assert kinds(check(entries, head=(2, entries[1][1][b"hash"].decode()))) == [
        ("foreign-entry", 3, 3)]


def test_the_head_must_match_the_last_entry() -> None:
    entries = chain(6)
    assert kinds(check(entries, head=(7, "ab" * 32))) == [("head-mismatch", 3, 7)]
    assert kinds(check(entries[:5], head=(6, entries[5][1][b"hash"].decode()))) == [
        ("head-mismatch", 3, 6)]
    assert kinds(check([], head=(None, None))) == []  # type: ignore[arg-type]
    lone = PartitionChain(3)
    lone.finish(2, "ab" * 32)
    assert kinds(lone) == [("head-mismatch", 3, 2)]


def test_a_missing_head_is_named_missing_not_sequence_none() -> None:
    entries = chain(4)
    for head, said in (((None, None), "is missing"), ((None, "ab" * 32), "has no sequence")):
        checker = check(entries, head=head)  # type: ignore[arg-type]
        assert kinds(checker) == [("head-mismatch", 3, None)]
        assert said in checker.problems[0].message
        assert "None" not in checker.problems[0].message


def _subjects(partition: int, count: int, routed: bool) -> list[str]:
    """Subjects that route (or not) to `partition` under `count` partitions."""
    return [s for s in (f"org-{i}" for i in range(200))
            if (partition_of(s, count) == partition) == routed]


def test_subjects_must_route_to_their_partition_under_the_stored_count() -> None:
    home, away = _subjects(3, 8, True)[:3], _subjects(3, 8, False)[:2]
    assert check(chain(9, subjects=home), partitions=8).ok
    # Entries 4 and 6 of another partition's subjects: one problem, at the first.
    subjects = [*home, away[0], home[0], away[1], *home]
    checker = check(chain(9, subjects=subjects), partitions=8)
    assert kinds(checker) == [("partition-count", 3, 4)]
    assert f"{away[0]!r} routes to partition {partition_of(away[0], 8)}" in (
        checker.problems[0].message)
    assert check(chain(9, subjects=subjects)).ok  # no count given: not checked


def test_a_consistent_rewrite_passes_the_chain_alone() -> None:
    """What only a digest catches: the chain is internally sound."""
    assert check(chain(8, partition=3)).ok


def test_problems_are_capped_with_a_count() -> None:
    entries = chain(1200)
    for i in range(0, 1200):
        sid, fields = entries[i]
        entries[i] = (sid, {**fields, b"event": fields[b"event"].replace(b'"urn:t"', b'"urn:x"')})
    checker = check(entries)
    assert len(checker.problems) == 1000 and checker.omitted == 200 and not checker.ok


def test_a_page_with_fields_in_another_order_or_repeated_is_checked_as_one_by_one() -> None:
    entries = chain(6)
    raw = as_sent(entries)
    raw[1][1] = [b"hash", raw[1][1][3], b"event", raw[1][1][1]]  # same fields, other order
    raw[3][1] = raw[3][1] + [b"event", b"{}"]  # a repeated field: the last value counts
    paged = PartitionChain(3)
    paged.feed_page(raw)
    assert [(p.kind, p.sequence) for p in paged.problems] == [("foreign-entry", 4)]
    assert paged.length == 5 and paged.last_sequence == 6


def test_problem_serialises_without_empty_fields() -> None:
    problem = Problem(kind="partition-count", message="m")
    assert problem.partition is None and problem.sequence is None


def test_a_page_names_the_entries_it_linked_for_an_export() -> None:
    entries = chain(6)
    raw = as_sent(entries)
    raw[1][1] = [b"hash", raw[1][1][3], b"event", raw[1][1][1]]  # linked one by one
    raw[3][1] = raw[3][1] + [b"event", b"{}"]  # foreign: left out
    raw.append([b"1712345678901-0", [b"note", b"hello"]])  # foreign: left out
    linked: list[tuple[bytes, bytes]] = []
    paged = PartitionChain(3)
    paged.feed_page(raw[:3], linked)
    paged.feed_page(raw[3:], linked)
    kept = [entries[i][1] for i in (0, 1, 2, 4, 5)]
    assert linked == [(fields[b"event"], fields[b"hash"]) for fields in kept]
