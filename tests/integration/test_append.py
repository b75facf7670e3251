"""The append path against a real server: dedupe, conflicts, versions, chain."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from events.codec import GENESIS, canonical_bytes, chain_hash, decode
from events.envelope import NewEvent, validate_event
from events.stored import event_key
from services.bootstrap import Services
from services.log import keys
from services.log.append import Appender, BatchRejected
from tests import factory


def mou(ident: str, subject: str = "lg", **extra: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "id": ident, "source": "urn:test", "type": "mou.signed",
            "subject": subject, "occurred": "2023-12?",
            "data": {"parties": [{"id": subject}, {"id": "jax"}]}, **extra}


async def append(services: Services, *raw: dict[str, Any]) -> list[Any]:
    return await services.appender.append([validate_event(r, "2025-01-01") for r in raw])


async def test_appended_events_get_partition_sequence_and_position(services: Services) -> None:
    [first, second] = await append(services, mou("a"), mou("b"))
    assert first.status == second.status == "appended"
    assert first.partition == keys.partition_of("lg", services.partitions)
    assert (first.sequence, second.sequence) == (1, 2)
    assert second.position == f"{first.partition}-2"


async def test_same_content_is_a_duplicate_with_the_original_position(services: Services) -> None:
    [original] = await append(services, mou("a"))
    [again] = await append(services, mou("a"))
    assert again.status == "duplicate"
    assert again.position == original.position
    assert await services.log.total() == 1


async def test_same_id_other_content_is_a_conflict(services: Services) -> None:
    await append(services, mou("a"))
    [clash] = await append(services, mou("a", occurred="2024"))
    assert (clash.status, clash.reason, clash.position) == ("conflict", "id-reused", None)
    assert await services.log.total() == 1


async def test_repeats_inside_one_batch_answer_like_resends(services: Services) -> None:
    results = await append(services, mou("a"), mou("a"), mou("a", occurred="2020"))
    assert [r.status for r in results] == ["appended", "duplicate", "conflict"]
    assert await services.log.total() == 1


async def test_duplicates_mixed_with_new_events_chain_correctly(services: Services) -> None:
    await append(services, mou("a"))
    results = await append(services, mou("b"), mou("a"), mou("c"))
    assert [r.status for r in results] == ["appended", "duplicate", "appended"]
    assert [r.sequence for r in results] == [2, 1, 3]
    await assert_chains_verify(services)


async def test_expected_version_checks_the_subjects_count(services: Services) -> None:
    [ok] = await append(services, mou("a", expectedversion=0))
    [stale] = await append(services, mou("b", expectedversion=0))
    [fresh] = await append(services, mou("c", expectedversion=1))
    assert ok.status == "appended" and fresh.status == "appended"
    assert (stale.status, stale.reason) == ("conflict", "version")


async def test_concurrent_expected_version_race_has_one_winner(services: Services) -> None:
    from services.log.append import Appender

    rivals = [Appender(services.client, services.partitions) for _ in range(5)]
    events = [validate_event(mou(f"r{i}", expectedversion=0)) for i in range(5)]
    outcomes = await asyncio.gather(*(a.append([e]) for a, e in zip(rivals, events, strict=True)))
    statuses = sorted(r[0].status for r in outcomes)
    assert statuses == ["appended", "conflict", "conflict", "conflict", "conflict"]
    assert await services.log.total() == 1


async def test_a_retry_after_another_process_appended_is_stamped_after_it(
    services: Services,
) -> None:
    from services.log.append import Appender

    late = Appender(services.client, services.partitions)  # the rival: services.appender
    await append(services, mou("first"))  # the rival knows the head; `late` does not yet
    stamped, rival_done = asyncio.Event(), asyncio.Event()
    write = late._write

    async def write_once_rival_is_in(*args: Any) -> Any:
        stamped.set()  # the batch is chained, its recordedtime taken
        await rival_done.wait()  # sent only after the rival's append
        return await write(*args)

    late._write = write_once_rival_is_in  # type: ignore[method-assign]
    slow = asyncio.ensure_future(late.append([validate_event(mou("late"))]))
    await stamped.wait()
    await append(services, mou("rival"))
    rival_done.set()
    await slow

    partition = keys.partition_of("lg", services.partitions)
    stored = [decode(fields[b"event"]) for _, fields in
              await services.client.xrange(keys.log(partition))]
    assert [e["id"] for e in stored] == ["first", "rival", "late"]
    recorded = [e["recordedtime"] for e in stored]
    assert recorded == sorted(recorded)


async def test_correction_needs_an_existing_target_of_the_same_subject(services: Services) -> None:
    await append(services, mou("a"))
    base = {"specversion": "1.0", "source": "urn:test", "type": "event.corrected"}
    with pytest.raises(BatchRejected) as missing:
        await append(services, {**base, "id": "c1", "subject": "lg",
                                "data": {"target": "nope", "reason": "r", "occurred": "2020"}})
    assert missing.value.errors[0][2].path == "data.target"
    # Another subject in lg's partition: the target is found there, and only the subject
    # check can refuse it (a subject elsewhere is refused sooner, as "data.target").
    assert keys.partition_of("naver", services.partitions) == keys.partition_of(
        "lg", services.partitions)
    with pytest.raises(BatchRejected) as other:
        await append(services, {**base, "id": "c2", "subject": "naver",
                                "data": {"target": "a", "reason": "r", "occurred": "2020"}})
    assert other.value.errors[0][2].path == "subject"
    with pytest.raises(BatchRejected) as elsewhere:
        await append(services, {**base, "id": "c2", "subject": "jax",
                                "data": {"target": "a", "reason": "r", "occurred": "2020"}})
    assert elsewhere.value.errors[0][2].path == "data.target"
    with pytest.raises(BatchRejected) as bad_data:
        await append(services, {**base, "id": "c3", "subject": "lg",
                                "data": {"target": "a", "reason": "r", "data": {"parties": []}}})
    assert bad_data.value.errors[0][2].path.startswith("data.data")
    assert await services.log.total() == 1


async def test_every_write_key_of_a_partition_shares_its_hash_tag(services: Services) -> None:
    for partition in range(services.partitions):
        tags = {k[k.index("{"): k.index("}") + 1] for k in keys.write_state(partition)}
        assert tags == {f"{{p{partition}}}"}


async def test_chain_recomputed_from_xrange_matches_and_has_no_gaps(services: Services) -> None:
    for start in range(0, 2000, 500):
        chunk = factory.story(2000)[start:start + 500]
        await services.appender.append([validate_event(e) for e in chunk])
    assert await services.log.total() == 2000
    await assert_chains_verify(services)


async def assert_chains_verify(services: Services) -> None:
    for partition in range(services.partitions):
        prev, expected_seq = GENESIS, 1
        raw = await services.client.xrange(keys.log(partition), "-", "+")
        for stream_id, fields in raw:
            stored = decode(fields[b"event"])
            assert stream_id == f"{expected_seq}-0".encode()
            assert stored["sequence"] == expected_seq and stored["partition"] == partition
            prev = chain_hash(prev, canonical_bytes(stored))
            assert fields[b"hash"].decode() == prev.hex()
            expected_seq += 1
        head = await services.client.hgetall(keys.head(partition))
        if raw:
            assert head[b"sequence"] == str(expected_seq - 1).encode()
            assert head[b"hash"].decode() == prev.hex()


async def test_an_identity_under_another_subject_is_a_conflict(services: Services) -> None:
    subjects = [s for s in ("lg", "jax", "acme", "zeta", "omega")
                if keys.partition_of(s, services.partitions) != keys.partition_of(
                    "lg", services.partitions)]
    [first] = await append(services, mou("one", subject="lg"))
    [other] = await append(services, mou("one", subject=subjects[0]))
    assert first.status == "appended"
    assert (other.status, other.reason, other.sequence) == ("conflict", "id-reused", None)
    assert await services.log.total() == 1
    both = await append(services, mou("two", subject="lg"), mou("two", subject=subjects[0]))
    assert [r.status for r in both] == ["appended", "conflict"]
    assert await services.log.total() == 2


async def test_an_event_refused_on_a_single_server_leaves_its_identity_free(
    services: Services,
) -> None:
    """A 409 `version` sent under a mistyped subject: the re-send under the right one
    (another partition) is appended, not `id-reused` for an event never written."""
    if services.settings.redis_cluster:
        pytest.skip("on a cluster the claim is a separate call made before the write "
                    "(README, Append): a refused event's claim stands there")
    home = keys.partition_of("lg", services.partitions)
    other = next(s for s in ("jax", "acme", "zeta", "omega")
                 if keys.partition_of(s, services.partitions) != home)
    [refused] = await append(services, mou("x", subject="lg", expectedversion=3))
    assert (refused.status, refused.reason) == ("conflict", "version")
    assert await services.client.hget(keys.OWNERS, event_key("urn:test", "x")) is None
    [resent] = await append(services, mou("x", subject=other))
    assert resent.status == "appended"
    owner = await services.client.hget(keys.OWNERS, event_key("urn:test", "x"))
    assert int(owner) == keys.partition_of(other, services.partitions)
    await assert_chains_verify(services)


async def test_an_amendment_before_its_target_in_one_request_is_refused(
    services: Services,
) -> None:
    retract = {"specversion": "1.0", "id": "r1", "source": "urn:test", "subject": "lg",
               "type": "event.retracted", "data": {"target": "t1", "reason": "no"}}
    with pytest.raises(BatchRejected) as refused:
        await append(services, retract, mou("t1"))
    assert refused.value.errors[0][2].path == "data.target"
    assert await services.log.total() == 0


async def test_an_amendment_whose_target_is_not_written_is_not_written(
    services: Services,
) -> None:
    await append(services, mou("seed"))
    retract = {"specversion": "1.0", "id": "r1", "source": "urn:test", "subject": "lg",
               "type": "event.retracted", "data": {"target": "t1", "reason": "no"}}
    results = await append(services, mou("t1", expectedversion=0), retract)
    assert [(r.status, r.reason) for r in results] == [
        ("conflict", "version"), ("conflict", "target-missing")]
    assert await services.log.total() == 1


async def test_an_amendment_is_judged_against_the_first_copy_of_its_target(
    services: Services,
) -> None:
    vendor_twin = {**mou("t1"), "type": "x-test.noted", "data": {"anything": 1}}
    fix = {"specversion": "1.0", "id": "c1", "source": "urn:test", "subject": "lg",
           "type": "event.corrected",
           "data": {"target": "t1", "reason": "r", "data": {"anything": 2}}}
    with pytest.raises(BatchRejected) as refused:
        await append(services, mou("t1"), vendor_twin, fix)
    assert refused.value.errors[0][2].path.startswith("data.data")


async def _with_a_rival(services: Services, rival_event: dict[str, Any],
                         *raw: dict[str, Any]) -> list[Any]:
    """Append `raw` while another process stores `rival_event` between this request's
    amendment check and its write."""
    rival, appender = (Appender(services.client, services.partitions) for _ in range(2))
    check = appender._check_amendments

    async def check_then_rival_appends(events: list[NewEvent]) -> dict[str, str]:
        judged = await check(events)
        [stored] = await rival.append([validate_event(rival_event, "2025-01-01")])
        assert stored.status == "appended"
        return judged

    appender._check_amendments = check_then_rival_appends  # type: ignore[method-assign]
    return await appender.append([validate_event(r, "2025-01-01") for r in raw])


def _same_partition_subject(partitions: int, subject: str = "lg") -> str:
    home = keys.partition_of(subject, partitions)
    return next(s for s in (f"s{i}" for i in range(1000))
                if s != subject and keys.partition_of(s, partitions) == home)


async def test_a_correction_checked_against_a_copy_that_lost_to_a_rival_is_not_written(
    services: Services,
) -> None:
    """Judged against the request's own copy of its target; by the write, another
    process has stored that identity as another type, and the copy is refused."""
    vendor_twin = {**mou("t1"), "type": "x-test.noted", "data": {"anything": 1}}
    fix = {"specversion": "1.0", "id": "c1", "source": "urn:test", "subject": "lg",
           "type": "event.corrected",
           "data": {"target": "t1", "reason": "r", "data": {"anything": 2}}}
    results = await _with_a_rival(services, mou("t1"), vendor_twin, fix)
    assert [(r.status, r.reason) for r in results] == [
        ("conflict", "id-reused"), ("conflict", "target-missing")]
    assert await services.log.total() == 1  # the rival's event alone


async def test_a_retraction_checked_against_a_copy_of_another_subject_is_not_written(
    services: Services,
) -> None:
    other = _same_partition_subject(services.partitions)
    retract = {"specversion": "1.0", "id": "r1", "source": "urn:test", "subject": other,
               "type": "event.retracted", "data": {"target": "t1", "reason": "r"}}
    results = await _with_a_rival(services, mou("t1"), mou("t1", subject=other), retract)
    assert [(r.status, r.reason) for r in results] == [
        ("conflict", "id-reused"), ("conflict", "target-missing")]
    assert await services.log.total() == 1


async def test_a_correction_checked_against_a_copy_a_rival_stored_first_is_written(
    services: Services,
) -> None:
    """The rival stored the same event: the request's copy is a duplicate of it, and the
    correction fits what is stored."""
    fix = {"specversion": "1.0", "id": "c1", "source": "urn:test", "subject": "lg",
           "type": "event.corrected",
           "data": {"target": "t1", "reason": "r",
                    "data": {"parties": [{"id": "lg"}, {"id": "kia"}]}}}
    results = await _with_a_rival(services, mou("t1"), mou("t1"), fix)
    assert [r.status for r in results] == ["duplicate", "appended"]


async def test_a_repeat_of_the_stored_event_after_a_conflicting_copy_is_a_duplicate(
    services: Services,
) -> None:
    [stored] = await append(services, mou("a"))
    results = await append(services, mou("a", occurred="2020"), mou("a"),
                           mou("a", occurred="2021"))
    assert [(r.status, r.reason, r.position) for r in results] == [
        ("conflict", "id-reused", None), ("duplicate", None, stored.position),
        ("conflict", "id-reused", None)]
    assert await services.log.total() == 1


async def test_a_repeat_of_an_unwritten_event_is_not_called_a_duplicate(
    services: Services,
) -> None:
    await append(services, mou("seed"))
    results = await append(services, mou("a", expectedversion=0), mou("a", expectedversion=0))
    assert [(r.status, r.reason) for r in results] == [("conflict", "version")] * 2


async def test_a_dateless_amendment_resent_another_day_is_a_duplicate(
    services: Services,
) -> None:
    await append(services, mou("t1"))
    retract = {"specversion": "1.0", "id": "r1", "source": "urn:test", "subject": "lg",
               "type": "event.retracted", "data": {"target": "t1", "reason": "no"}}
    [first] = await services.appender.append([validate_event(retract, "2025-01-01")])
    [again] = await services.appender.append([validate_event(retract, "2025-01-02")])
    assert (first.status, again.status) == ("appended", "duplicate")


async def test_an_amendment_of_an_event_earlier_in_the_same_request_is_appended(
    services: Services,
) -> None:
    retract = {"specversion": "1.0", "id": "r1", "source": "urn:test", "subject": "lg",
               "type": "event.retracted", "data": {"target": "t1", "reason": "no"}}
    results = await append(services, mou("t1"), retract)
    assert [(r.status, r.sequence) for r in results] == [("appended", 1), ("appended", 2)]
    await assert_chains_verify(services)


async def test_expected_versions_count_the_events_earlier_in_the_same_request(
    services: Services,
) -> None:
    results = await append(services, mou("a", expectedversion=0), mou("b", expectedversion=1),
                           mou("c"), mou("d", expectedversion=3))
    assert [r.status for r in results] == ["appended"] * 4
    [stale] = await append(services, mou("e", expectedversion=3))
    assert (stale.status, stale.reason) == ("conflict", "version")
    [fresh] = await append(services, mou("f", expectedversion=4))
    assert fresh.status == "appended"


async def test_the_largest_batch_in_one_partition_is_written_whole(services: Services) -> None:
    # More identities than one call of the scripts takes at once (they split reads and
    # writes into chunks of 500).
    first = await append(services, *(mou(f"e{i}") for i in range(1000)))
    assert [r.sequence for r in first] == list(range(1, 1001))
    again = await append(services, *(mou(f"e{i}") for i in range(999, 1000)),
                         *(mou(f"n{i}") for i in range(999)))
    assert again[0].status == "duplicate" and again[0].sequence == 1000
    assert [r.sequence for r in again[1:]] == list(range(1001, 2000))
    versions = await services.client.hget(
        keys.versions(keys.partition_of("lg", services.partitions)), "lg")
    assert int(versions) == 1999
    await assert_chains_verify(services)


async def test_claims_made_with_the_append_are_honoured_by_every_path(
    services: Services,
) -> None:
    home = keys.partition_of("lg", services.partitions)
    other = next(s for s in ("jax", "acme", "zeta", "omega")
                 if keys.partition_of(s, services.partitions) != home)
    [first] = await append(services, mou("x", subject="lg"))
    assert first.status == "appended"
    owner = await services.client.hget(keys.OWNERS, event_key("urn:test", "x"))
    assert int(owner) == home
    # the identity alone under another subject, beside a new event of that subject
    results = await append(services, mou("x", subject=other), mou("y", subject=other))
    assert [(r.status, r.reason) for r in results] == [("conflict", "id-reused"),
                                                       ("appended", None)]
    # the identity under two subjects in one request: the first copy decides
    results = await append(services, mou("x", subject=other), mou("x", subject="lg"))
    assert [r.status for r in results] == ["conflict", "duplicate"]
    assert await services.log.total() == 2
    await assert_chains_verify(services)


async def test_an_unconfirmed_write_is_not_acknowledged_and_a_retry_is_a_duplicate(
    services: Services, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from services.log import append as append_module
    from services.log.append import Appender, NotDurable

    monkeypatch.setattr(append_module, "WAIT_TIMEOUT_MS", 10)
    strict = Appender(services.client, services.partitions, write_replicas=5)  # none has 5
    with pytest.raises(NotDurable):
        await strict.append([validate_event(mou("w1"))])
    [again] = await append(services, mou("w1"))
    assert (again.status, again.sequence) == ("duplicate", 1)
    await assert_chains_verify(services)
