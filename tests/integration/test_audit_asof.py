"""`as_of`: timelines and events exactly as they were known at an instant, with a
real worker projecting and the real API answering."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
from typing import Any

import httpx
import msgspec
import pytest

from events.stored import StoredEvent, stored_decoder
from projections.fold import Query, Timelines
from services.bootstrap import Services
from services.log import keys
from services.log.append import now_rfc3339
from tests import factory
from tests.integration.audit_helpers import cli
from tests.integration.projection_helpers import publish, read_all, wait_projected

pytestmark = pytest.mark.usefixtures("worker")

SOURCE = "urn:test:asof"


def ref(ident: str) -> dict[str, str]:
    return {"id": ident, "name": ident.title(), "kind": "org"}


def event(ident: str, kind: str, occurred: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"specversion": "1.0", "id": ident, "source": SOURCE, "type": kind,
            "subject": "acme", "occurred": occurred, "data": data}


LIFE = [
    event("f", "meeting.held", "2024-01-10", {"parties": [ref("acme"), ref("delta")]}),
    event("e", "mou.signed", "2023-12",
          {"parties": [ref("acme"), ref("beta")], "place": {"country": "KR", "city": "Seoul"},
           "topics": ["ai"]}),
    event("c1", "event.corrected", "2024-03-01",
          {"target": "e", "reason": "signed in February [/b]", "occurred": "2024-02-15"}),
    event("c2", "event.corrected", "2024-03-02",
          {"target": "e", "reason": "wrong partner",
           "data": {"parties": [ref("acme"), ref("gamma")], "place": {"country": "US"},
                    "topics": ["bio"]}}),
    event("r", "event.retracted", "2024-03-03", {"target": "e", "reason": "never happened"}),
]
ROUTES = ["entity/acme", "entity/beta", "entity/gamma", "pair/acme/beta", "pair/acme/gamma",
          "place/KR", "place/US", "topic/ai", "topic/bio", "all"]


def expected_at(step: int) -> dict[str, list[str]]:
    """The timelines after LIFE[:step + 1] were recorded (step 0: before `e`)."""
    empty = {route: [] for route in ROUTES}
    if step == 0:
        return {**empty, "entity/acme": ["f"], "all": ["f"]}
    if step == 1:
        return {**empty, "entity/acme": ["e", "f"], "entity/beta": ["e"], "pair/acme/beta": ["e"],
                "place/KR": ["e"], "topic/ai": ["e"], "all": ["e", "f"]}
    if step == 2:  # the date moved after f's
        return {**empty, "entity/acme": ["f", "e"], "entity/beta": ["e"],
                "pair/acme/beta": ["e"], "place/KR": ["e"], "topic/ai": ["e"], "all": ["f", "e"]}
    if step == 3:  # beta, KR, ai left; gamma, US, bio joined
        return {**empty, "entity/acme": ["f", "e"], "entity/gamma": ["e"],
                "pair/acme/gamma": ["e"], "place/US": ["e"], "topic/bio": ["e"], "all": ["f", "e"]}
    return {**empty, "entity/acme": ["f"], "all": ["f"]}


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [e["id"] for e in response.json()["entries"]]


def before(recorded: str) -> str:
    moment = dt.datetime.fromisoformat(recorded.replace("Z", "+00:00"))
    return (moment - dt.timedelta(microseconds=1)).isoformat().replace("+00:00", "Z")


def test_five_instants_across_one_events_life(http: httpx.Client, redis_url: str) -> None:
    position = ""
    for item in LIFE:
        response = http.post("/v1/events", json=item)
        assert response.status_code == 200, response.text
        position = response.json()["position"]
    assert http.get("/v1/timelines/all", params={"min_position": position}).status_code == 200
    view = http.get("/v1/events", params={"source": SOURCE, "id": "e"}).json()
    recorded = [v["recordedtime"] for v in view["history"]]
    assert [v["id"] for v in view["history"]] == ["e", "c1", "c2", "r"]
    # Offsets other than Z name the same instants.
    tokyo = dt.datetime.fromisoformat(recorded[0].replace("Z", "+00:00")).astimezone(
        dt.timezone(dt.timedelta(hours=9))).isoformat()
    instants = [before(recorded[0]), tokyo, recorded[1], recorded[2], recorded[3]]

    for step, instant in enumerate(instants):
        wait = {"as_of": instant, "min_position": position}
        for route, expected in expected_at(step).items():
            assert ids(http.get(f"/v1/timelines/{route}", params=wait)) == expected, (step, route)
        acme = http.get("/v1/timelines/entity/acme",
                        params={**wait, "include_retracted": "true"}).json()["entries"]
        states = {e["id"]: (e["occurred"], e["version"], e["status"]) for e in acme}
        assert states.get("e") == [None, ("2023-12", 1, "active"),
                                   ("2024-02-15", 2, "corrected"), ("2024-02-15", 3, "corrected"),
                                   ("2024-02-15", 3, "retracted")][step]
        found = http.get("/v1/events", params={"source": SOURCE, "id": "e", "as_of": instant})
        if step == 0:
            assert found.status_code == 404 and found.json()["error"] == "not-found"
        else:
            assert found.status_code == 200
            assert len(found.json()["history"]) == step
            assert (found.json()["entry"]["version"], found.json()["entry"]["status"]) == \
                states["e"][1:]

    t1, t2, t3 = instants[1], instants[2], instants[3]
    acme = "/v1/timelines/entity/acme"
    assert ids(http.get(acme, params={"as_of": t1, "from": "2024-02"})) == []
    assert ids(http.get(acme, params={"as_of": t2, "from": "2024-02"})) == ["e"]
    assert ids(http.get(acme, params={"as_of": t2, "order": "desc"})) == ["e", "f"]
    assert ids(http.get(acme, params={"as_of": t1, "type": "mou.signed"})) == ["e"]
    assert ids(http.get(acme, params={"as_of": t2, "with": "beta"})) == ["e"]
    assert ids(http.get(acme, params={"as_of": t3, "with": "beta"})) == []
    assert ids(http.get(acme, params={"as_of": t3, "with": "gamma"})) == ["e"]
    # Now is the same as the last instant.
    for route, expected in expected_at(4).items():
        assert ids(http.get(f"/v1/timelines/{route}")) == expected
    # An amendment's id finds its target, but only once the amendment was recorded.
    assert http.get("/v1/events", params={"source": SOURCE, "id": "c1",
                                          "as_of": t1}).status_code == 404
    by_fix = http.get("/v1/events", params={"source": SOURCE, "id": "c1", "as_of": t2}).json()
    assert by_fix["entry"]["id"] == "e" and len(by_fix["history"]) == 2

    # The command line: a timeline as of an instant, and the history of one event.
    shown = cli(["show", "entity", "acme", "--as-of", t1, "--format", "json"], redis_url)
    assert [e["id"] for e in json.loads(shown.stdout)["entries"]] == ["e", "f"], shown.stderr
    history = cli(["audit", "history", SOURCE, "e", "--json"], redis_url)
    versions = json.loads(history.stdout)["history"]
    assert [(v["id"], v.get("reason")) for v in versions] == [
        ("e", None), ("c1", "signed in February [/b]"), ("c2", "wrong partner"),
        ("r", "never happened")]
    assert all(v["recordedby"] == "anonymous" and v["position"] for v in versions)
    table = cli(["audit", "history", SOURCE, "e", "--as-of", t2], redis_url)
    # a reason is text, never Rich markup (`[/b]` was a MarkupError)
    assert table.returncode == 0 and "signed in February [/b]" in table.stdout, table.stderr
    assert "wrong partner" not in table.stdout
    narrow = cli(["audit", "history", SOURCE, "e"], redis_url, COLUMNS="80")
    for version in versions:  # whole: "2026-12-03T05:43:0…" was all an 80-column one showed
        assert version["recordedtime"] in narrow.stdout, narrow.stdout
    missing = cli(["audit", "history", SOURCE, "e", "--as-of", instants[0]], redis_url)
    assert missing.returncode == 1 and "no event 'e'" in missing.stderr


def test_as_of_pages_with_its_own_cursors(http: httpx.Client) -> None:
    position = ""
    for item in LIFE[:3]:
        position = http.post("/v1/events", json=item).json()["position"]
    instant = now_rfc3339()
    first = http.get("/v1/timelines/entity/acme",
                     params={"as_of": instant, "limit": 1, "min_position": position}).json()
    second = http.get("/v1/timelines/entity/acme",
                      params={"as_of": instant, "limit": 1, "cursor": first["next_cursor"]}).json()
    assert [e["id"] for e in first["entries"] + second["entries"]] == ["f", "e"]
    assert second["next_cursor"] is None
    live = http.get("/v1/timelines/entity/acme", params={"limit": 1}).json()["next_cursor"]
    mixed = http.get("/v1/timelines/entity/acme", params={"as_of": instant, "cursor": live})
    assert mixed.status_code == 400 and mixed.json()["errors"][0]["path"] == "cursor"
    for bad in ("2024-01-01", "soon", "2024-02-30T00:00:00Z"):
        for path, extra in (("/v1/timelines/all", {}), ("/v1/events", {"source": "s", "id": "i"})):
            refused = http.get(path, params={"as_of": bad, **extra})
            assert refused.status_code == 400, (path, bad)
            assert refused.json()["errors"][0]["path"] == "as_of"


def interleave(count: int, amend: int, chunks: int, seed: int) -> list[list[dict[str, Any]]]:
    """Events in `chunks` publishes, each amendment in its target's chunk or a later one."""
    rng = random.Random(seed)
    originals = [factory.event(i, rng) for i in range(count)]
    size = count // chunks
    out: list[list[dict[str, Any]]] = [originals[i * size:(i + 1) * size] for i in range(chunks)]
    chunk_of = {e["id"]: min(i // size, chunks - 1) for i, e in enumerate(originals)}
    tails: list[list[dict[str, Any]]] = [[] for _ in range(chunks)]
    for fix in factory.amendments(originals, rng, amend, count):
        tails[rng.randint(chunk_of[fix["data"]["target"]], chunks - 1)].append(fix)
    return [body + tail for body, tail in zip(out, tails, strict=True)]


async def stored_log(services: Services) -> list[StoredEvent]:
    found = []
    for partition in range(services.partitions):
        raw = await services.client.xrange(keys.log(partition), "-", "+")
        found += [stored_decoder.decode(f[b"event"]) for _, f in raw]
    return found


def same(a: list[Any], b: list[Any]) -> None:
    assert [msgspec.to_builtins(x) for x in a] == [msgspec.to_builtins(x) for x in b]


async def test_as_of_equals_the_fold_of_what_was_recorded_by_then(services: Services) -> None:
    instants = []
    for chunk in interleave(1500, 300, chunks=5, seed=11):
        await publish(services, chunk, batch=150)
        await asyncio.sleep(0.002)
        instants.append(now_rfc3339())
        await asyncio.sleep(0.002)
    await wait_projected(services)
    log = await stored_log(services)
    keys_sample = random.Random(3).sample([e for e in log if e.id.startswith("e-")], 60)
    for instant in [*instants, instants[0][:11] + "00:00:00.000000Z"]:
        model = Timelines()
        for stored in log:
            if stored.recordedtime <= instant:
                model.apply(stored)
        for name in ("all", "entity:org-1", "pair:org-1:org-2", "place:US", "topic:ai",
                     "place:KR:seoul"):
            for q in (Query(timeline=name, as_of=instant),
                      Query(timeline=name, as_of=instant, descending=True,
                            include_retracted=True),
                      Query(timeline=name, as_of=instant, start="2021-03-01", end="2022-06-30"),
                      Query(timeline=name, as_of=instant, types=("mou.signed",),
                            with_entity="org-2")):
                same(await read_all(services, q, limit=97), model.query(q))
        for stored in keys_sample:
            found = await services.read_model.entry(stored.source, stored.id, as_of=instant)
            if stored.key not in model.entries:
                assert found is None
                continue
            assert found is not None
            same([found[0]], [model.entries[stored.key]])
            same(found[1], model.history[stored.key])


def met(ident: str, month: int) -> dict[str, Any]:
    return event(ident, "meeting.held", f"2023-0{month}-01",
                 {"parties": [ref("acme"), ref("delta")]})


def fix(ident: str, target: str) -> dict[str, Any]:
    return event(ident, "event.corrected", "2025-01-01",
                 {"target": target, "reason": "other partner",
                  "data": {"parties": [ref("acme"), ref(f"p-{ident}")]}})


@pytest.mark.parametrize("descending", [False, True], ids=["asc", "desc"])
async def test_an_entry_amended_between_two_as_of_pages_comes_once(
    services: Services, descending: bool
) -> None:
    """Amending the entry a page ended on adds versions beside the cursor (a closed copy
    of the version that held then): the next page must not show the entry again."""
    await publish(services, [met("m1", 1), met("m2", 2), met("m3", 3)])
    first = "m3" if descending else "m1"
    if descending:  # amended before the instant too: the cursor is an as-of index member
        await publish(services, [fix("early", first)])
    await wait_projected(services)
    query = Query(timeline="entity:acme", as_of=max(e.recordedtime for e in
                                                    await stored_log(services)),
                  descending=descending)
    page = await services.read_model.page(query, 1)
    seen = [e.id for e in page.entries]
    await publish(services, [fix("late", first)])
    await wait_projected(services)
    while page.next_cursor:
        page = await services.read_model.page(query, 1, page.next_cursor)
        seen += [e.id for e in page.entries]
    assert seen == (["m3", "m2", "m1"] if descending else ["m1", "m2", "m3"])
