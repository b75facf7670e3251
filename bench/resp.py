"""A bare RESP client over asyncio streams: commands packed by hand, replies
parsed by hiredis. It is the fastest way Python can talk to Redis here, so it
sets the limit that any client library (ours goes through redis-py) can reach."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlparse

import hiredis


def pack(*parts: bytes) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


class RespConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.parser = hiredis.Reader()

    @classmethod
    async def open(cls, url: str) -> RespConnection:
        parsed = urlparse(url)
        reader, writer = await asyncio.open_connection(parsed.hostname, parsed.port or 6379,
                                                       limit=1 << 24)
        return cls(reader, writer)

    async def pipeline(self, commands: bytes, replies: int) -> list[Any]:
        """Send already-packed commands at once; return their `replies` replies."""
        await self.send(commands)
        return await self.replies(replies)

    async def send(self, commands: bytes) -> None:
        """Send already-packed commands; their replies are read by `replies`, in order."""
        self.writer.write(commands)
        await self.writer.drain()

    async def replies(self, replies: int) -> list[Any]:
        """The next `replies` replies; raises the first error among them."""
        got: list[Any] = []
        while len(got) < replies:
            reply = self.parser.gets()
            if reply is False:
                chunk = await self.reader.read(1 << 20)
                if not chunk:
                    raise ConnectionError("server closed the connection")
                self.parser.feed(chunk)
                continue
            if isinstance(reply, hiredis.ReplyError):
                raise reply
            got.append(reply)
        return got

    async def call(self, *parts: bytes) -> Any:
        return (await self.pipeline(pack(*parts), 1))[0]

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()
