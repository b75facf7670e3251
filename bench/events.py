"""Realistic events of about 400 bytes, made deterministically from a seed.

Like tests/factory.py, but with the data a newsroom importer would send
(names, places, headlines, a summary sentence, source URLs), so that stored
bytes, validation work and read-model documents are representative. One
"hot" entity is the subject of 1% of the events and named by no other event,
so its timeline holds exactly 1% of the store; `amendments` later corrects or
retracts some of them.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import msgspec

from events.catalog import CORRECTED, RETRACTED
from events.codec import GENESIS, canonical_bytes, chain_hash
from services.log import keys

HOT = "hot-entity"
SOURCE = "urn:bench:newsroom"
COUNTRIES = [("KR", "Seoul"), ("US", "New York"), ("PL", "Warsaw"), ("CA", "Toronto"),
             ("ID", "Jakarta"), ("DE", "Berlin"), ("JP", "Tokyo"), ("GB", "London")]
TOPICS = ["ai", "bio", "cleantech", "batteries", "semiconductors", "genomics", "robotics"]
WORDS = ["joint", "research", "programme", "covering", "generative", "models", "clinical",
         "data", "materials", "discovery", "battery", "chemistry", "display", "panels",
         "supply", "agreements", "pilot", "plants", "regional", "expansion", "long-term",
         "partnership"]
KINDS = ["mou.signed", "contract.concluded", "site.visited", "meeting.held",
         "investment.announced", "acquisition.announced", "award.received",
         "solution.deployed", "collaboration.launched"]

_encoder = msgspec.json.Encoder()


def entity_count(scale: int) -> int:
    """About a hundred events per ordinary entity, as a large newsroom archive has."""
    return max(40, scale // 100)


def ref(ident: str) -> dict[str, Any]:
    return {"id": ident, "name": ident.replace("-", " ").title()}


def _occurred(rng: random.Random) -> str:
    year, month = rng.randint(2015, 2024), rng.randint(1, 12)
    roll = rng.random()
    if roll < 0.1:
        return f"{year}"
    if roll < 0.35:
        return f"{year}-{month:02d}{rng.choice(['', '?', '~'])}"
    return f"{year}-{month:02d}-{rng.randint(1, 28):02d}"


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def _data(kind: str, subject: str, other: str, rng: random.Random) -> dict[str, Any]:
    country, city = rng.choice(COUNTRIES)
    amount = {"amount": rng.randint(1, 5000) * 1_000_000, "currency": "USD"}
    data: dict[str, Any]
    if kind in ("mou.signed", "contract.concluded", "meeting.held"):
        data = {"parties": [ref(subject), ref(other)]}
        if kind == "contract.concluded":
            data["value"] = amount
    elif kind == "collaboration.launched":
        data = {"parties": [ref(subject), ref(other)], "title": _sentence(rng, 4)}
    elif kind == "site.visited":
        data = {"visitor": ref(subject), "host": ref(other),
                "place": {"country": country, "city": city}, "purpose": _sentence(rng, 3)}
    elif kind == "investment.announced":
        data = {"investor": ref(subject), "amount": amount, "area": rng.choice(TOPICS)}
    elif kind == "acquisition.announced":
        data = {"acquirer": ref(subject), "target": ref(other), "value": amount}
    elif kind == "award.received":
        data = {"recipient": ref(subject), "award": "Innovation prize", "rank": 1, "of": 9}
    else:
        data = {"provider": ref(subject), "client": ref(other), "application": "inspection"}
    data["topics"] = rng.sample(TOPICS, 2)
    if "place" not in data:
        data["place"] = {"country": country, "city": city}
    data["summary"] = _sentence(rng, 4)
    data["sources"] = [f"https://news.example.com/{rng.randint(10**6, 10**7)}"]
    return data


def event(index: int, rng: random.Random, entities: int, run: str = "") -> dict[str, Any]:
    """Event number `index`: every 100th is about the hot entity."""
    others = [f"org-{rng.randrange(entities):05d}", f"org-{rng.randrange(entities):05d}"]
    subject = HOT if index % 100 == 0 else others[0]
    other = others[1] if others[1] != subject else f"org-{entities:05d}"
    kind = rng.choice(KINDS)
    return {"specversion": "1.0", "id": f"{run}n-{index}", "source": SOURCE, "type": kind,
            "subject": subject, "occurred": _occurred(rng),
            "data": _data(kind, subject, other, rng)}


def generate(count: int, seed: int = 5, run: str = "") -> list[dict[str, Any]]:
    rng = random.Random(seed)
    entities = entity_count(count)
    return [event(i, rng, entities, run) for i in range(count)]


def amendments(events: list[dict[str, Any]], seed: int = 7) -> list[dict[str, Any]]:
    """Amendments of the hot entity's events, as a newsroom's later fixes: every tenth
    of them corrected (its date moved, or its summary rewritten), every fiftieth
    retracted, so its timeline holds superseded versions for `as_of` to find."""
    rng = random.Random(seed)
    found: list[dict[str, Any]] = []
    for index in range(0, len(events), 500):
        target = events[index]
        if index % 1000 == 0:
            kind, change = CORRECTED, (
                {"occurred": _occurred(rng)} if index % 2000 == 0 else
                {"data": {**target["data"], "summary": _sentence(rng, 4)}})
        elif index % 5000 == 500:
            kind, change = RETRACTED, {}
        else:
            continue
        found.append({"specversion": "1.0", "id": f"fix-{target['id']}", "source": SOURCE,
                      "type": kind, "subject": HOT,
                      "data": {"target": target["id"], "reason": _sentence(rng, 3), **change}})
    return found


def batches(events: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(events), size):
        yield events[start:start + size]


def body(events: list[dict[str, Any]]) -> bytes:
    return _encoder.encode(events)


def stored_payloads(events: list[dict[str, Any]], partitions: int) -> list[tuple[bytes, bytes]]:
    """(stored event JSON, hash hex) as the log would hold them: the limit's payload bytes."""
    heads: dict[int, tuple[int, bytes]] = {}
    out = []
    for raw in events:
        partition = keys.partition_of(raw["subject"], partitions)
        sequence, prev = heads.get(partition, (0, GENESIS))
        stored = {**raw, "recordedtime": "2025-01-01T00:00:00.000000Z", "recordedby": "bench",
                  "partition": partition, "sequence": sequence + 1, "schemaversion": 1}
        canonical = canonical_bytes(stored)
        digest = chain_hash(prev, canonical)
        heads[partition] = (sequence + 1, digest)
        out.append((canonical, digest.hex().encode()))
    return out
