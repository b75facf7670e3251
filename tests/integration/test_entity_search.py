"""GET /v1/entities?prefix=: type-ahead over the entities the projection has named."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import redis

from projections.store import ReadModel, namespace_key
from services.audit.replay import drop_namespace, flip
from services.bootstrap import Services
from services.entity_search import search_entities

pytestmark = pytest.mark.usefixtures("worker")


def org(ident: str, name: str) -> dict[str, str]:
    return {"id": ident, "name": name, "kind": "org"}


def test_prefix_matches_ids_then_names_then_words(http: httpx.Client) -> None:
    events = [{"specversion": "1.0", "id": f"s-{i}", "source": "urn:test:search",
               "type": "mou.signed", "subject": a["id"], "occurred": "2024",
               "data": {"parties": [a, b]}}
              for i, (a, b) in enumerate([
                  (org("jax", "The Jackson Laboratory"), org("lg-ai-research", "LG AI Research")),
                  (org("jackson-hole", "Jackson Hole Group"), org("acme", "Acme")),
                  (org("blue-jay", "Blue Jay Labs"), org("jacquard", "Jacquard Looms")),
              ])]
    position = http.post("/v1/events", json=events).json()["position"]
    assert http.get("/v1/timelines/all", params={"min_position": position}).status_code == 200

    def ids(prefix: str, **extra: str) -> list[str]:
        response = http.get("/v1/entities", params={"prefix": prefix, **extra})
        assert response.status_code == 200
        return [e["id"] for e in response.json()["entities"]]

    # id prefix first, then a name's first word, then a later word of a name
    assert ids("ja") == ["jackson-hole", "jacquard", "jax", "blue-jay"]
    assert ids("the") == ["jax"]
    assert ids("lab") == ["blue-jay", "jax"]
    assert ids("jack") == ["jackson-hole", "jax"]
    assert ids("JACKSON") == ["jackson-hole", "jax"]
    assert ids("blue") == ["blue-jay"]
    assert ids("ja", limit="1") == ["jackson-hole"]
    assert ids("zzz") == []
    found = http.get("/v1/entities", params={"prefix": "lg"}).json()["entities"]
    assert found == [{"id": "lg-ai-research", "name": "LG AI Research", "kind": "org"}]


def test_names_match_without_case_accents_or_punctuation(http: httpx.Client) -> None:
    named = [org("ist", "İstanbul Holding"), org("strasse-ag", "Straße AG"),
             org("att-directv", "AT&T/DirecTV"), org("lg-display", "LG Display (Korea)"),
             org("liege-steel", "Liège Steel")]
    events = [{"specversion": "1.0", "id": f"n-{i}", "source": "urn:test:search",
               "type": "mou.signed", "subject": entity["id"], "occurred": "2024",
               "data": {"parties": [entity, {"id": "nameless-partner"}]}}
              for i, entity in enumerate(named)]
    position = http.post("/v1/events", json=events).json()["position"]
    assert http.get("/v1/timelines/all", params={"min_position": position}).status_code == 200

    def ids(prefix: str) -> list[str]:
        return [e["id"] for e in http.get("/v1/entities", params={"prefix": prefix}).json()[
            "entities"]]

    assert ids("istanbul") == ["ist"]
    assert ids("İSTANBUL") == ["ist"]
    assert ids("strasse") == ["strasse-ag"]
    assert ids("straße") == ["strasse-ag"]
    assert ids("directv") == ["att-directv"]
    assert ids("korea") == ["lg-display"]
    assert ids("liege") == ["liege-steel"]
    # an entity no event named: found when its id is typed out whole
    found = http.get("/v1/entities", params={"prefix": "nameless-partner"}).json()["entities"]
    assert found == [{"id": "nameless-partner"}]


def test_bad_parameters_are_named(http: httpx.Client) -> None:
    response = http.get("/v1/entities", params={"prefix": "a", "limit": "0"})
    assert response.status_code == 400
    assert [e["path"] for e in response.json()["errors"]] == ["limit"]


async def test_a_search_across_a_promote_reads_a_whole_copy(
    services: Services, sync_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy the search started on is switched away from and dropped between its
    first call and its scan: it searches the copy the promote switched to."""
    for namespace in ("blue", "green"):
        sync_redis.hset(namespace_key(namespace, "names"), "org-lg", "LG AI Research")
        sync_redis.hset(namespace_key(namespace, "applied"), 0, 1)
    client, scan, promoted = services.client, services.client.hscan, []

    async def scan_after_a_promote(*args: Any, **kwargs: Any) -> Any:
        if not promoted:
            promoted.append(await flip(client, "blue", "green", {0: 1}))
            await drop_namespace(client, "blue")
        return await scan(*args, **kwargs)

    monkeypatch.setattr(client, "hscan", scan_after_a_promote)
    found = await search_entities(ReadModel(client), "lg", 10)
    assert promoted and [m.id for m in found] == ["org-lg"]


async def test_a_field_the_scan_returns_twice_is_found_once(
    services: Services, sync_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HSCAN may return a field again while the hash rehashes (names are added as the
    projection runs): the entity was listed twice."""
    names = namespace_key("blue", "names")
    sync_redis.hset(names, mapping={"org-lg": "LG AI Research", "org-lgx": "LGX"})
    sync_redis.hset(namespace_key("blue", "applied"), 0, 1)
    client, scan = services.client, services.client.hscan
    calls: list[int] = []

    async def scan_twice(key: Any, cursor: int = 0, **kwargs: Any) -> Any:
        calls.append(cursor)
        _, page = await scan(key, 0, **kwargs)  # the whole (small) hash, each call
        return (0 if len(calls) > 1 else 1), page

    monkeypatch.setattr(client, "hscan", scan_twice)
    found = await search_entities(ReadModel(client), "org-lg", 10)
    assert len(calls) == 2
    assert [m.id for m in found] == ["org-lg", "org-lgx"]
