"""Entity timeline pages over HTTP: concurrent clients paging with cursors."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import quote

from bench.rawhttp import HttpConnection

_CURSOR = b'"next_cursor":"'


def next_cursor(body: bytes) -> str | None:
    """The response's `next_cursor`, found without decoding 100 entries: it is
    the last field of the response object."""
    at = body.rfind(_CURSOR)
    if at < 0:
        return None
    start = at + len(_CURSOR)
    return body[start:body.index(b'"', start)].decode()


async def page_clients(base: str, entity: str, requests: int, clients: int = 8,
                       limit: int = 100, extra: str = "") -> dict[str, Any]:
    """`clients` clients each walk the entity's timeline page by page (half of
    them newest first), starting over at the end, until `requests` are done."""
    latencies: list[float] = []
    errors: list[str] = []
    remaining = requests
    empty = 0

    async def client(number: int) -> None:
        nonlocal remaining, empty
        order = "desc" if number % 2 else "asc"
        path = f"/v1/timelines/entity/{entity}?limit={limit}&order={order}{extra}"
        conn = await HttpConnection.open(base)
        cursor: str | None = None
        try:
            while remaining > 0:
                remaining -= 1
                url = path + (f"&cursor={quote(cursor)}" if cursor else "")
                started = time.perf_counter()
                status, body = await conn.request("GET", url)
                latencies.append((time.perf_counter() - started) * 1000)
                if status != 200:
                    errors.append(f"{status} {body[:300].decode(errors='replace')}")
                if b'"entries":[]' in body:
                    empty += 1
                cursor = next_cursor(body)
        finally:
            await conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    elapsed = time.perf_counter() - t0
    return {"latencies": latencies, "errors": errors, "empty_pages": empty,
            "rate": len(latencies) / elapsed}
