"""Valid events for tests, made deterministically from a seed."""

from __future__ import annotations

import random
from typing import Any

ENTITIES = [f"org-{i}" for i in range(40)]
COUNTRIES = ["KR", "US", "PL", "CA", "ID", "DE", "JP"]
CITIES = ["Seoul", "New York", "Warsaw", None]
TOPICS = ["ai", "bio", "cleantech"]
SOURCE = "urn:test:factory"


def occurred(rng: random.Random) -> str:
    year = rng.randint(2019, 2024)
    month = rng.randint(1, 12)
    shape = rng.random()
    qualifier = rng.choice(["", "", "", "?", "~", "%"])
    if shape < 0.15:
        return f"{year}{qualifier}"
    if shape < 0.45:
        return f"{year}-{month:02d}{qualifier}"
    if shape < 0.55:
        return f"{year}-{month:02d}-01/{year}-{month:02d}-{rng.randint(2, 28):02d}"
    return f"{year}-{month:02d}-{rng.randint(1, 28):02d}{qualifier}"


def ref(ident: str) -> dict[str, Any]:
    return {"id": ident, "name": ident.replace("-", " ").title(), "kind": "org"}


def data_for(kind: str, subject: str, rng: random.Random) -> dict[str, Any]:
    other = rng.choice([e for e in ENTITIES if e != subject])
    data: dict[str, Any]
    if kind == "mou.signed":
        data = {"parties": [ref(subject), ref(other)]}
    elif kind == "site.visited":
        data = {"visitor": ref(subject), "place": {"country": rng.choice(COUNTRIES)}}
    elif kind == "award.received":
        data = {"recipient": ref(subject), "award": "prize", "rank": 1, "of": 3}
    elif kind == "acquisition.announced":
        data = {"acquirer": ref(subject), "target": ref(other),
                "value": {"amount": rng.randint(1, 10**9), "currency": "USD"}}
    else:
        data = {"anything": rng.randint(0, 9)}
    if rng.random() < 0.4:
        data["topics"] = rng.sample(TOPICS, rng.randint(1, 2))
    if rng.random() < 0.3 and kind != "site.visited" and not kind.startswith("x-"):
        city = rng.choice(CITIES)
        data["place"] = {"country": rng.choice(COUNTRIES), **({"city": city} if city else {})}
    return data


def event(i: int, rng: random.Random, subject: str | None = None) -> dict[str, Any]:
    subject = subject or rng.choice(ENTITIES)
    kind = rng.choice(["mou.signed", "site.visited", "award.received",
                       "acquisition.announced", "x-test.noted"])
    return {"specversion": "1.0", "id": f"e-{i}", "source": SOURCE, "type": kind,
            "subject": subject, "occurred": occurred(rng), "data": data_for(kind, subject, rng)}


def amendments(events: list[dict[str, Any]], rng: random.Random, count: int,
               start: int) -> list[dict[str, Any]]:
    """Corrections (of date, of data, of both) and retractions of earlier events."""
    out = []
    for n, target in enumerate(rng.sample(events, count)):
        ident = f"a-{start + n}"
        base = {"specversion": "1.0", "id": ident, "source": target["source"],
                "subject": target["subject"], "occurred": "2025-01-01"}
        roll = rng.random()
        if roll < 0.25:
            out.append({**base, "type": "event.retracted",
                        "data": {"target": target["id"], "reason": "wrong"}})
            continue
        data: dict[str, Any] = {"target": target["id"], "reason": "fix"}
        if roll < 0.6 or target["type"].startswith("x-"):
            data["occurred"] = occurred(rng)
        if roll >= 0.45:
            data["data"] = data_for(target["type"], target["subject"], rng)
        out.append({**base, "type": "event.corrected", "data": data})
    return out


def story(count: int, seed: int = 7, amend: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    events = [event(i, rng) for i in range(count)]
    return events + amendments(events, rng, amend, count)
