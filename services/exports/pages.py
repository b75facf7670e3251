"""Reading a whole timeline for an export, page by page, up to a cap.

The one part of exports with I/O. A timeline page is at most 1,000 entries;
an export follows the cursor until the timeline ends or `EXPORT_CAP` entries
are read, and hands back the cursor it stopped at so the caller can say where
to continue (the HTTP routes put it in an `X-Next-Cursor` header).
"""

from __future__ import annotations

from dataclasses import dataclass

from projections.entry import Entry
from projections.fold import Query
from projections.store import ReadModel

EXPORT_CAP = 10_000
PAGE_SIZE = 1_000


@dataclass
class Collected:
    entries: list[Entry]
    next_cursor: str | None


async def collect(
    read_model: ReadModel, query: Query, cursor: str | None = None, cap: int = EXPORT_CAP
) -> Collected:
    entries: list[Entry] = []
    while True:
        page = await read_model.page(query, min(PAGE_SIZE, cap - len(entries)), cursor)
        entries.extend(page.entries)
        cursor = page.next_cursor
        if cursor is None or len(entries) >= cap:
            return Collected(entries, cursor)


async def title_name(
    read_model: ReadModel, kind: str, keys: list[str], query: Query, entries: list[Entry]
) -> str | None:
    """The name an entity timeline's export is titled with. As of an instant, the one
    its latest-recorded entry gives it: the read model's is the newest, which may have
    been learned after that instant (while the entries show the name known then)."""
    if kind != "entity":
        return None
    if query.as_of is None:
        return (await read_model.names(keys)).get(keys[0])
    named = [(e.recordedtime, role.name) for e in entries for role in e.entities
             if role.id == keys[0] and role.name]
    return max(named)[1] if named else None
