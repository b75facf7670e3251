"""Reading the log back: heads, lengths and raw entries, by XRANGE pages."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from services.log import keys


def _as_sent(response: Any, **options: Any) -> Any:
    return response


class RawRange:
    """XRANGE pages as the server sends them: `[id, [field, value, ...]]` per entry.

    redis-py's XRANGE response callback builds a dict per entry in Python, which
    costs more than checking the entry does. For a plain client we read through
    a sibling client on the same connection pool (same connections, retries and
    TLS) whose XRANGE callback passes the reply through. A cluster client shares
    its callbacks with every node, so there XRANGE runs inside a script, whose
    reply redis-py leaves as it is. Either way an entry that gives a field name
    twice shows both (a dict would keep one: auditors must see such an entry).
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        self.unparsed: Any = None
        if isinstance(client, aioredis.Redis):
            self.unparsed = aioredis.Redis(connection_pool=client.connection_pool)
            self.unparsed.set_response_callback("XRANGE", _as_sent)
        else:
            self._scripted = client.register_script(_XRANGE)

    async def __call__(self, key: str, start: bytes | str, end: bytes | str,
                       count: int) -> list[list[Any]]:
        if self.unparsed is not None:
            return list(await self.unparsed.xrange(key, start, end, count=count))
        return list(await self._scripted(keys=[key], args=[start, end, count]))


_XRANGE = "return redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[2], 'COUNT', ARGV[3])"


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
