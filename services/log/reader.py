"""Reading the log back: heads, lengths and raw entries, by XRANGE pages."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from services.log import keys


class BadHead(ValueError):
    """A partition's stored chain head is not one the append path writes, or not what
    its log holds: tampered with (`timeline audit verify` says more)."""

    def __init__(self, partition: int, why: str) -> None:
        self.partition, self.why = partition, why
        super().__init__(f"partition {partition}: {why}")


def parse_head(partition: int, reply: Any) -> tuple[int | None, str | None]:
    """(sequence, hash) from `HMGET <head> sequence hash` (a pipeline's reply, an error
    included), None for a field that is absent; BadHead when it holds no head."""
    if isinstance(reply, ResponseError):
        if not str(reply).startswith("WRONGTYPE"):
            raise reply
        raise BadHead(partition, "the stored head's key holds another type than a hash")
    seq, value = reply
    text = seq.decode(errors="replace") if isinstance(seq, bytes) else seq
    if text is not None and not (text.isascii() and text.isdigit()):
        raise BadHead(partition, f"the stored head's sequence is not a number ({text[:40]!r})")
    return (int(text) if text is not None else None,
            value.decode(errors="replace") if value else None)


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
        """The last sequence of every partition (0 when empty); BadHead for a stored
        head that is not one."""
        pipe = self.client.pipeline(transaction=False)
        for partition in range(self.partitions):
            pipe.hmget(keys.head(partition), "sequence", "hash")
        replies = await pipe.execute(raise_on_error=False)
        return {p: parse_head(p, r)[0] or 0 for p, r in enumerate(replies)}

    async def total(self) -> int:
        return sum((await self.heads()).values())
