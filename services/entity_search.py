"""Type-ahead over known entities: ids and latest names from the read model.

The active namespace's names hash holds every entity a projected event named. HSCAN walks it in
pages; matching is done here because a prefix of a *name* ("jackson") cannot
be expressed as a server-side MATCH on the hash's fields (the ids). A budget
bounds the walk, so one keystroke never costs more than that on a huge hash.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import msgspec

from events.refs import ENTITY_ID_PATTERN
from projections.store import ReadModel, namespace_key

SCAN_PAGE = 1000
SCAN_BUDGET = 50_000  # names looked at per search, at most


class EntityMatch(msgspec.Struct, omit_defaults=True):
    id: str
    name: str | None = None
    kind: str | None = None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


_WORDS = re.compile(r"[\W_]+")
_ENTITY_ID = re.compile(ENTITY_ID_PATTERN)


def fold(text: str) -> str:
    """Text as type-ahead compares it: case-folded, accents dropped ("İstanbul" and
    "istanbul", "Straße" and "strasse", "Liège" and "liege" match)."""
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _rank(ident: str, name: str, prefix: str) -> int | None:
    """0: the id starts with the prefix, 1: the name does, 2: a later word does (words
    split at anything but letters and digits: "AT&T/DirecTV", "LG Display (Korea)")."""
    if ident.startswith(prefix):
        return 0
    folded = fold(name)
    if folded.startswith(prefix):
        return 1
    if any(word.startswith(prefix) for word in _WORDS.split(folded)):
        return 2
    return None


async def search_entities(read_model: ReadModel, prefix: str, limit: int) -> list[EntityMatch]:
    """Known entities whose id, name or a word of the name starts with `prefix`.

    The search reads one copy of the read model in several calls; a promote that
    switches copies meanwhile drops the one being read, so the search runs again
    on the copy it switched to (a promote takes far longer than a search).
    """
    namespace = await read_model.active()
    while True:
        found = await _search_in(read_model, namespace, fold(prefix.strip()), limit)
        now = await read_model.active()
        if now == namespace:
            return found
        namespace = now


async def _search_in(read_model: ReadModel, namespace: str, prefix: str, limit: int
                     ) -> list[EntityMatch]:
    client: Any = read_model.client
    names, kinds_key = namespace_key(namespace, "names"), namespace_key(namespace, "kinds")
    # By id: HSCAN may return a field twice (the hash rehashing as names are added).
    matched: dict[str, tuple[int, str]] = {}
    cursor, seen = 0, 0
    while True:
        cursor, page = await client.hscan(names, cursor, count=SCAN_PAGE)
        for raw_id, raw_name in page.items():
            ident, name = _text(raw_id), _text(raw_name)
            rank = _rank(ident, name, prefix)
            if rank is not None:
                matched[ident] = (rank, name)
        seen += len(page)
        if cursor == 0 or seen >= SCAN_BUDGET:
            break
    if prefix not in matched and await _unnamed(client, namespace, prefix):
        matched[prefix] = (0, "")
    found = sorted((rank, ident, name) for ident, (rank, name) in matched.items())
    best = found[:limit]
    kinds = await client.hmget(kinds_key, [i for _, i, _ in best]) if best else []
    return [EntityMatch(ident, name or None, _text(kind) if kind is not None else None)
            for (_, ident, name), kind in zip(best, kinds, strict=True)]


async def _unnamed(client: Any, namespace: str, ident: str) -> bool:
    """An entity no event named is in no names hash; typed out whole, its timeline
    still shows it is known."""
    return bool(_ENTITY_ID.fullmatch(ident)) and bool(
        await client.exists(namespace_key(namespace, f"tl:entity:{ident}")))
