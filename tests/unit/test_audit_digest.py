"""Digests: signing, refusing, parsing with named fields, and what "extends" means."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
import pytest

from services.audit import digest as digests
from services.audit.chain import ZERO_HEAD

NOW = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=9)))
HEADS = {0: (5, "a" * 64), 1: (0, ZERO_HEAD), 2: (3, "b" * 64)}


def as_json(digest: digests.Digest) -> Any:
    return msgspec.json.decode(msgspec.json.encode(digest))


def test_issued_digest_is_utc_and_signed_with_the_key() -> None:
    digest = digests.issue(HEADS, "secret", NOW)
    assert digest.issued_at == "2024-03-01T03:00:00.000000Z"
    assert [(p.partition, p.sequence, p.head) for p in digest.partitions] == [
        (0, 5, "a" * 64), (1, 0, ZERO_HEAD), (2, 3, "b" * 64)]
    assert digest.signature == digests.signature_of(digest, "secret")
    assert digests.check_signature(digests.parse(as_json(digest)), "secret") == "valid"


def test_without_a_key_the_digest_is_unsigned() -> None:
    digest = digests.issue(HEADS, None, NOW)
    assert digest.signature is None and as_json(digest)["signature"] is None
    assert digests.check_signature(digest, None) == "unsigned"


@pytest.mark.parametrize("tamper", [
    lambda d: d["partitions"][0].update(sequence=4),
    lambda d: d["partitions"][2].update(head="c" * 64),
    lambda d: d.update(issued_at="2025-01-01T00:00:00.000000Z"),
    lambda d: d["partitions"].pop(),
])
def test_a_tampered_digest_is_refused(tamper: Any) -> None:
    raw = as_json(digests.issue(HEADS, "secret", NOW))
    tamper(raw)
    with pytest.raises(digests.BadDigest) as caught:
        digests.check_signature(digests.parse(raw), "secret")
    assert caught.value.path == "signature"
    assert "does not match" in caught.value.message


def test_another_key_an_unsigned_digest_or_no_key_are_refused() -> None:
    signed = digests.issue(HEADS, "secret", NOW)
    with pytest.raises(digests.BadDigest, match="does not match"):
        digests.check_signature(signed, "other")
    with pytest.raises(digests.BadDigest, match="no TIMELINE_DIGEST_KEY"):
        digests.check_signature(signed, None)
    with pytest.raises(digests.BadDigest, match="unsigned digest is refused"):
        digests.check_signature(digests.issue(HEADS, None, NOW), "secret")


@pytest.mark.parametrize(("raw", "path"), [
    ({"issued_at": "x", "partitions": [{"partition": 0, "sequence": "5", "head": "a" * 64}]},
     "partitions[0].sequence"),
    ({"issued_at": "x", "partitions": [{"partition": 0, "sequence": 5, "head": "zz"}]},
     "partitions[0].head"),
    ({"issued_at": "x", "partitions": [{"partition": -1, "sequence": 5, "head": "a" * 64}]},
     "partitions[0].partition"),
    ({"partitions": []}, "issued_at"),
    ({"issued_at": "x", "partitions": [], "extra": 1}, "extra"),
    ({"issued_at": "x", "partitions": [{"partition": 0, "head": "a" * 64}]},
     "partitions[0].sequence"),
    ({"issued_at": "x", "partitions": [], "signature": "short"}, "signature"),
    ([1, 2], "digest"),
])
def test_malformed_digests_name_the_field(raw: Any, path: str) -> None:
    with pytest.raises(digests.BadDigest) as caught:
        digests.parse(raw)
    assert caught.value.path == path, caught.value


def test_a_partition_listed_twice_is_refused() -> None:
    part = {"partition": 0, "sequence": 1, "head": "a" * 64}
    with pytest.raises(digests.BadDigest, match="twice"):
        digests.parse({"issued_at": "x", "partitions": [part, part]})


def test_extension_problems() -> None:
    digest = digests.issue(HEADS, None, NOW)
    assert digests.wanted(digest) == {0: frozenset({5}), 2: frozenset({3})}
    ok = digests.extension_problems(digest, 3, {0: 9, 1: 0, 2: 3},
                                    {0: {5: "a" * 64}, 2: {3: "b" * 64}})
    assert ok == []
    truncated = digests.extension_problems(digest, 3, {0: 4, 1: 0, 2: 3}, {2: {3: "b" * 64}})
    assert [(p.kind, p.partition, p.sequence) for p in truncated] == [("truncated", 0, 5)]
    rewritten = digests.extension_problems(digest, 3, {0: 9, 1: 0, 2: 3},
                                           {0: {5: "f" * 64}, 2: {3: "b" * 64}})
    assert [(p.kind, p.partition, p.sequence) for p in rewritten] == [("digest-mismatch", 0, 5)]
    missing = digests.extension_problems(digest, 3, {0: 9, 1: 0, 2: 3}, {2: {3: "b" * 64}})
    assert [(p.kind, p.partition) for p in missing] == [("digest-mismatch", 0)]
    fewer = digests.extension_problems(digest, 4, {0: 9, 2: 3},
                                       {0: {5: "a" * 64}, 2: {3: "b" * 64}})
    assert [(p.kind, p.partition) for p in fewer] == [("partition-count", None)]
