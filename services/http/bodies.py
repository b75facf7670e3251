"""Request bodies read with an idle timeout: uvicorn has none for a body that stops."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request

from services.http.errors import ApiError

BODY_IDLE_SECONDS = 10.0  # longest silence while a body is arriving


async def read_body(request: Request[Any, Any, Any]) -> bytes:
    """The whole body, or 408 when the client stops sending for BODY_IDLE_SECONDS.

    Without it a client that sends half a request and goes quiet holds its
    connection and the handler for ever. A slow but steady client is never cut off.
    """
    chunks = []
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(BODY_IDLE_SECONDS) as idle:  # no task per chunk
            async for chunk in request.stream():
                chunks.append(chunk)
                idle.reschedule(loop.time() + BODY_IDLE_SECONDS)
    except TimeoutError:
        raise ApiError(408, "request-timeout", f"no part of the body arrived for "
                       f"{BODY_IDLE_SECONDS:g} s; nothing was written") from None
    return b"".join(chunks)
