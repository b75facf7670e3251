"""Timeline members a rebuild holds back and writes later, sorted.

A live projection inserts each batch's members where they fall in timelines
that are already large, and at a million events those insertions into sorted
sets are most of the server's time. A rebuild writes a copy nobody reads
until it is complete, so it can hold new entries' members here and insert
them in sorted order, which the server does faster (a replay of 200,000
events: 26.6 -> 7.2 µs of ZADD per event; docs/performance.md).

The copy ends the same: every timeline member has score 0, so a timeline is
a set and insertions commute. Only a removal does not commute with a held
insertion: before a batch whose amendments remove earlier members is
applied, `write_now` writes those of them still held (projections/runner.py),
so the removal finds them, and a member the same batch adds and removes is
not held at all; `flush` writes the rest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable, Iterator
from typing import Any

from projections.store import ReadModel

HOLD_LIMIT = 1_000_000  # members (~200 MB here) before all are written
CALL_MEMBERS = 10_000  # about this many per script call: the server keeps serving


class HeldMembers:
    """New entries' members per timeline, not yet in the rebuild's copy."""

    def __init__(self, read_model: ReadModel, limit: int = HOLD_LIMIT) -> None:
        self.read_model = read_model
        self.limit = limit
        self._held: dict[str, set[str]] = {}
        self._count = 0
        # One write at a time: `write_now` must not miss a member a running `flush`
        # has taken but not yet written.
        self._writing = asyncio.Lock()

    def __len__(self) -> int:
        return self._count

    def add(self, members: dict[str, list[str]],
            removed: Iterable[tuple[str, str]] = ()) -> None:
        """Hold the new members of a batch the read model has applied, but those its
        own amendments `removed` (the script found them absent: they stay so)."""
        for name, found in members.items():
            held = self._held.setdefault(name, set())
            before = len(held)
            held.update(found)
            self._count += len(held) - before
        for name, member in removed:  # write_now took every earlier one: these are new
            self._release(name, member)

    async def write_now(self, members: Collection[tuple[str, str]]) -> None:
        """Write these (timeline, member) now if they are held."""
        if not members:
            return
        async with self._writing:
            taken: dict[str, set[str]] = {}
            for name, member in members:
                if self._release(name, member):
                    taken.setdefault(name, set()).add(member)
            await self._write(taken)

    async def flush(self) -> None:
        """Write everything held."""
        async with self._writing:
            taken, self._held, self._count = self._held, {}, 0
            await self._write(taken)

    def _release(self, name: str, member: str) -> bool:
        """Stop holding `member` of `name`; whether it was held."""
        held = self._held.get(name)
        if held is None or member not in held:
            return False
        held.remove(member)
        self._count -= 1
        return True

    async def flush_if_full(self) -> None:
        if self._count >= self.limit:
            await self.flush()

    async def _write(self, taken: dict[str, set[str]]) -> None:
        for groups in _calls(taken):
            await self.read_model.add_members(groups)


def _calls(taken: dict[str, set[str]]) -> Iterator[list[Any]]:
    """[timeline, [member...], ...] per script call, each timeline's members sorted,
    about CALL_MEMBERS members per call (a large timeline spans several)."""
    call: list[Any] = []
    size = 0
    for name, held in taken.items():
        found = sorted(held)
        for i in range(0, len(found), CALL_MEMBERS):
            part = found[i:i + CALL_MEMBERS]
            call += (name, part)
            size += len(part)
            if size >= CALL_MEMBERS:
                yield call
                call, size = [], 0
    if call:
        yield call
