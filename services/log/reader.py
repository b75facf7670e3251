"""Reading the log back: heads, lengths and raw entries, by XRANGE pages."""

from __future__ import annotations

from typing import Any

from services.log import keys


class LogReader:
    def __init__(self, client: Any, partitions: int) -> None:
        self.client = client
        self.partitions = partitions

    async def heads(self) -> dict[int, int]:
        """The last sequence of every partition (0 when empty)."""
        pipe = self.client.pipeline(transaction=False)
        for partition in range(self.partitions):
            pipe.hget(keys.head(partition), "sequence")
        replies = await pipe.execute()
        return {p: int(r or 0) for p, r in enumerate(replies)}

    async def total(self) -> int:
        return sum((await self.heads()).values())

    async def entries(
        self, partition: int, after: int = 0, count: int = 1000
    ) -> list[tuple[int, bytes, str]]:
        """(sequence, stored event JSON, hash) after `after`, in order."""
        page = await self.client.xrange(keys.log(partition), f"{after + 1}-0", "+", count=count)
        return [
            (int(i.split(b"-")[0]), f[b"event"], f[b"hash"].decode()) for i, f in page
        ]
