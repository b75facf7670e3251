"""The comparison of two read-model copies against a real server: what it reports
must equal a plain comparison done here, whatever the chunking and the per-call
budget cut through (both set tiny so every boundary is crossed)."""

from __future__ import annotations

import random
from typing import Any

import msgspec
import pytest
import redis

from projections import asof
from projections.store import namespace_key
from services.audit import compare
from services.audit.compare import (
    Comparer,
    Difference,
    describe_hash,
    describe_member,
    describe_score,
)
from services.bootstrap import Services

LIVE, REBUILT = "blue", "green"


def member(day: int, ident: str) -> str:
    """A timeline member in the stored layout (29 ordering characters, then the key)."""
    return f"2023{day:04d}2" + "0" * 20 + f"urn:t\x1f{ident}\x1f20231231ambu.signed"


def ever_member(day: int, ident: str, sequence: int) -> str:
    return member(day, ident) + asof.suffix("0" * 20, asof.OPEN, sequence)


def zset_pair(rng: random.Random, size: int, drift: float, ever: bool
              ) -> tuple[set[str], set[str]]:
    """Two versions of one sorted set: the same members but for `drift` of them."""
    def make(i: int) -> str:
        day = rng.randrange(1, 1300)
        return ever_member(day, f"e-{i}", i) if ever else member(day, f"e-{i}")

    common = {make(i) for i in range(size)}
    live, rebuilt = set(common), set(common)
    for i in range(size, size + int(size * drift) + 1):
        if rng.random() < drift:
            (live if rng.random() < 0.5 else rebuilt).add(make(i))
    if drift and common and rng.random() < drift:
        rebuilt.discard(next(iter(sorted(common))))  # the first member: a chunk boundary
    return live, rebuilt


def expected_timelines(zsets: dict[str, tuple[set[str], set[str]]],
                       names: list[str]) -> list[Difference]:
    found = []
    for name in names:
        for family, scope in compare.ZSETS.items():
            live, rebuilt = zsets.get(family + name, (set(), set()))
            found += [describe_member(scope, name, "extra-live", m) for m in sorted(live - rebuilt)]
            found += [describe_member(scope, name, "missing-live", m)
                      for m in sorted(rebuilt - live)]
    return found


def expected_hash(scope: str, live: dict[str, str], rebuilt: dict[str, str]) -> list[Difference]:
    found = []
    for field in sorted(set(live) | set(rebuilt)):
        a, b = live.get(field), rebuilt.get(field)
        if a != b:
            problem = "missing-live" if a is None else "extra-live" if b is None else "differs"
            found.append(describe_hash(scope, field, problem, a, b))
    return found


def plain(diffs: list[Difference]) -> list[Any]:
    return msgspec.to_builtins(diffs)  # type: ignore[no-any-return]


def write_hash(client: redis.Redis, key: str, mapping: dict[str, Any]) -> None:
    client.hset(key, mapping=mapping)  # type: ignore[arg-type]


def write_zsets(client: redis.Redis, zsets: dict[str, tuple[set[str], set[str]]]) -> None:
    for suffix, (live, rebuilt) in zsets.items():
        for namespace, members in ((LIVE, live), (REBUILT, rebuilt)):
            if members:
                client.zadd(namespace_key(namespace, suffix), dict.fromkeys(members, 0))


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compare, "CHUNK", 7)
    monkeypatch.setattr(compare, "BUDGET", 40)
    monkeypatch.setattr(compare, "TIMELINES_PER_CALL", 5)


@pytest.mark.usefixtures("tiny")
async def test_timelines_report_exactly_the_members_one_copy_lacks(
    services: Services, sync_redis: redis.Redis
) -> None:
    rng = random.Random(7)
    zsets: dict[str, tuple[set[str], set[str]]] = {}
    names = [f"entity:org-{i:02d}" for i in range(40)]
    for i, name in enumerate(names):
        size = rng.choice([0, 1, 2, 3, 6, 7, 8, 15, 60, 200])
        zsets["tl:" + name] = zset_pair(rng, size, rng.choice([0.0, 0.0, 0.05, 0.3, 1.0]),
                                        ever=False)
        if i % 3 == 0:
            zsets["ever:" + name] = zset_pair(rng, rng.choice([1, 9, 40]), 0.2, ever=True)
    zsets["tl:only-live"] = ({member(5, "x-1"), member(6, "x-2")}, set())
    zsets["tl:only-rebuilt"] = (set(), {member(5, "y-1")})
    # an as-of index in one copy only (most pairs of them exist in neither)
    zsets["ever:only-live"] = ({ever_member(5, "x-1", 3)}, set())
    zsets["ever:only-rebuilt"] = (set(), {ever_member(5, "y-1", 4)})
    # as many members on both sides, but not the same ones
    zsets["tl:swapped"] = ({member(1, "s-1"), member(2, "s-2")},
                           {member(1, "s-1"), member(3, "s-3")})
    names += ["only-live", "only-rebuilt", "swapped"]
    write_zsets(sync_redis, zsets)

    got = await Comparer(services.client, LIVE, REBUILT).timelines(sorted(names))

    want = expected_timelines(zsets, sorted(names))
    assert len(want) > 50  # the comparison has work to do
    assert plain(got) == plain(want)


@pytest.mark.usefixtures("tiny")
async def test_identical_copies_have_no_differences(
    services: Services, sync_redis: redis.Redis
) -> None:
    rng = random.Random(11)
    zsets = {f"tl:t{i}": zset_pair(rng, rng.choice([0, 1, 7, 14, 300]), 0.0, ever=False)
             for i in range(30)}
    write_zsets(sync_redis, zsets)
    fields = {f"urn:t\x1fe-{i}": f'{{"headline":"{i}"}}' for i in range(400)}
    for namespace in (LIVE, REBUILT):
        write_hash(sync_redis, namespace_key(namespace, "entries"), fields)
        write_hash(sync_redis, namespace_key(namespace, "maxspan"),
                   {suffix[3:]: 1 for suffix in zsets})

    assert await Comparer(services.client, LIVE, REBUILT).everything() == []


@pytest.mark.usefixtures("tiny")
@pytest.mark.parametrize("size", [1, 3, 20], ids=["one", "small", "chunked"])
async def test_a_member_scored_other_than_0_in_either_copy_is_a_difference(
    services: Services, sync_redis: redis.Redis, size: int
) -> None:
    """Pages are read in lex order, which needs every score 0: the same members with
    another score are another timeline (its entries reordered, or some hidden)."""
    members = sorted(member(day, f"e-{day}") for day in range(1, size + 1))
    ever = ever_member(1, "e-1", 1)
    for namespace in (LIVE, REBUILT):
        sync_redis.zadd(namespace_key(namespace, "tl:entity:lg"), dict.fromkeys(members, 0))
        sync_redis.zadd(namespace_key(namespace, "ever:entity:lg"), {ever: 0})
        sync_redis.zadd(namespace_key(namespace, "tl:entity:ok"), dict.fromkeys(members, 0))
    sync_redis.zadd(namespace_key(LIVE, "tl:entity:lg"), {members[0]: 5})
    sync_redis.zadd(namespace_key(LIVE, "tl:entity:lg"), {members[-1]: -1.5})  # the same if one
    sync_redis.zadd(namespace_key(REBUILT, "ever:entity:lg"), {ever: 2})
    comparer = Comparer(services.client, LIVE, REBUILT)

    got = await comparer.timelines(["entity:lg", "entity:ok"])

    if size == 1:  # one member, scored twice: the last score stands
        want = [describe_score("timeline", "entity:lg", members[0], -1.5, 0.0)]
    else:  # below 0, then above, as they are looked for
        want = [describe_score("timeline", "entity:lg", members[-1], -1.5, 0.0),
                describe_score("timeline", "entity:lg", members[0], 5.0, 0.0)]
    want.append(describe_score("as-of-index", "entity:lg", ever, 0.0, 2.0))
    assert plain(got) == plain(want)
    assert plain(await comparer.recheck(got)) == plain(want)


@pytest.mark.parametrize("family", ["tl:", "ever:"])
async def test_a_timeline_only_the_live_copy_holds_is_compared_unlisted(
    services: Services, sync_redis: redis.Redis, family: str
) -> None:
    """A damaged live copy may hold a timeline (or as-of index) no `maxspan` lists."""
    stored = ever_member(1, "e-1", 1) if family == "ever:" else member(1, "e-1")
    for namespace in (LIVE, REBUILT):
        write_hash(sync_redis, namespace_key(namespace, "entries"), {"urn:t\x1fe-1": "{}"})
        write_hash(sync_redis, namespace_key(namespace, "maxspan"), {"entity:org-a": 1})
        sync_redis.zadd(namespace_key(namespace, family + "entity:org-a"), {stored: 0})
    sync_redis.zadd(namespace_key(LIVE, family + "entity:org-ghost"), {stored: 0})

    found = await Comparer(services.client, LIVE, REBUILT).everything()
    assert [(d.timeline, d.problem) for d in found] == [("entity:org-ghost", "extra-live")]


def amended(rng: random.Random, rebuilt: dict[str, str], changed: int, dropped: int,
            extra: int) -> dict[str, str]:
    """A live copy of `rebuilt`: values changed, fields dropped, fields of its own."""
    live = dict(rebuilt)
    for field in rng.sample(sorted(rebuilt), changed):
        live[field] = live[field].replace('"version":1', '"version":2')
    for field in rng.sample(sorted(rebuilt), dropped):
        live.pop(field)
    live.update({f"urn:t\x1fx-{i}": "{}" for i in range(extra)})
    return live


@pytest.mark.usefixtures("tiny")
@pytest.mark.parametrize(("dropped", "extra"), [(20, 10), (0, 10), (10, 10)],
                         ids=["fewer-live", "more-live", "as-many-but-others"])
async def test_hashes_report_differing_extra_and_missing_fields(
    services: Services, sync_redis: redis.Redis, dropped: int, extra: int
) -> None:
    rng = random.Random(5)
    # over 512 fields (hash-max-listpack-entries): a real hash table, walked by HSCAN
    # in many calls
    rebuilt = {f"urn:t\x1fe-{i}": f'{{"headline":"h{i}","version":1}}' for i in range(700)}
    live = amended(rng, rebuilt, 30, dropped, extra)
    write_hash(sync_redis, namespace_key(LIVE, "entries"), live)
    write_hash(sync_redis, namespace_key(REBUILT, "entries"), rebuilt)

    got = await Comparer(services.client, LIVE, REBUILT).hash("entries", "entry")

    want = expected_hash("entry", live, rebuilt)
    assert len(want) >= 35
    assert sorted(map(msgspec.json.encode, got)) == sorted(map(msgspec.json.encode, want))
    recheck = await Comparer(services.client, LIVE, REBUILT).recheck(got)
    assert sorted(map(msgspec.json.encode, recheck)) == sorted(map(msgspec.json.encode, want))


@pytest.mark.usefixtures("tiny")
@pytest.mark.parametrize(("dropped", "extra", "walks_live"),
                         [(0, 0, False), (0, 1, True), (1, 1, True)],
                         ids=["same-fields", "one-more-live", "one-other-live"])
async def test_the_live_copy_is_walked_only_when_it_may_hold_extra_fields(
    services: Services, sync_redis: redis.Redis, dropped: int, extra: int, walks_live: bool
) -> None:
    """Every rebuilt field found live and the lengths equal: no live field can be extra."""
    rebuilt = {f"urn:t\x1fe-{i}": f'{{"headline":"h{i}","version":1}}' for i in range(700)}
    live = amended(random.Random(3), rebuilt, 5, dropped, extra)
    write_hash(sync_redis, namespace_key(LIVE, "entries"), live)
    write_hash(sync_redis, namespace_key(REBUILT, "entries"), rebuilt)
    comparer = Comparer(services.client, LIVE, REBUILT)
    modes: list[str] = []
    script = comparer._script

    async def counted(keys: list[str], args: list[Any]) -> Any:
        modes.append(args[0] if args[0] != "hash" else args[1])
        return await script(keys=keys, args=args)

    comparer._script = counted
    got = await comparer.hash("entries", "entry")

    want = expected_hash("entry", live, rebuilt)
    assert sorted(map(msgspec.json.encode, got)) == sorted(map(msgspec.json.encode, want))
    assert ("missing" in modes) is walks_live
    assert modes.count("differs") > 1  # the rebuilt copy is always walked, in many calls
