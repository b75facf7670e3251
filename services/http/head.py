"""HEAD answered as GET without the body (RFC 9110 9.3.2: a server that has GET must
have HEAD). Litestar routes a HEAD only to a handler declared for it, so without this
every route answered HEAD with 405, and an uptime check's `curl -I` saw the API down."""

from __future__ import annotations

from litestar.types import ASGIApp, Message, Receive, Scope, Send

DISCONNECT: Message = {"type": "http.disconnect"}


def head_as_get(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await app(scope, receive, send)
            return
        answered = False

        async def headers_only(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start":
                await send(message)  # Content-Length and all: what GET would say
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                answered = True
            # The body is dropped, and the response has ended: a stream (live) told so
            # by its next read of the request stops, where it would run on unread.

        async def until_answered() -> Message:
            return DISCONNECT if answered else await receive()

        # A copy: the server keeps its own scope saying HEAD, so it sends no body either.
        as_get = {**scope, "method": "GET"}
        try:
            await app(as_get, until_answered, headers_only)
        finally:  # what Litestar wrote into it (the app, the route) is for the request log
            scope.update({k: v for k, v in as_get.items() if k != "method"})

    return middleware
