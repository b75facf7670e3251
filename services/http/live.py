"""GET /v1/live: timeline entries as the projection applies them (Server-Sent Events).

Each event is `event: entry`, `id:` the live stream id, `data:` the JSON
`{"entry": ..., "timelines": [...], "left": [...]}` (`left`: the timelines a
correction has just taken the entry off; a filter matches those too). A client
that reconnects sends the last id it saw as `Last-Event-ID` (browsers do it by
themselves) and first gets everything it missed. If what it missed was already
trimmed from the capped stream, it gets one `event: reset` and should reload the
timeline; so does a connected client that reads slower than the cap allows.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
from litestar import Litestar, Request, get
from litestar.params import FromQuery, Parameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from events.refs import ENTITY_ID_PATTERN
from projections.live import LiveMessage, LiveReader, is_stream_id, matches
from services.http.deps import ServicesDep
from services.http.errors import AUTH, ApiError, responses

POLL_MS = 1000  # longest wait in Redis: a stopping server ends streams within this
RETRY_MS = 2000  # how soon a disconnected browser reconnects
_ID = re.compile(ENTITY_ID_PATTERN)
_json = msgspec.json.Encoder()


def close_streams(app: Litestar) -> None:
    """Ask open streams to end: uvicorn otherwise waits for them on shutdown."""
    app.state.live_closing = True


def _closing(request: Request[Any, Any, Any]) -> bool:
    return bool(request.app.state.get("live_closing"))


def _check(entity: str | None, topic: str | None, last_id: str | None) -> None:
    errors = [{"path": name, "message": "must be an entity id or topic slug"}
              for name, value in (("entity", entity), ("topic", topic))
              if value is not None and not _ID.fullmatch(value)]
    if last_id is not None and not is_stream_id(last_id):
        errors.append({"path": "Last-Event-ID",
                       "message": "must be an id this stream sent, like 1700000000000-0"})
    if errors:
        raise ApiError(400, "bad-request", "invalid live-stream parameters", errors=errors)


def _event(message: LiveMessage) -> ServerSentEventMessage:
    body = _json.encode({"entry": message.entry, "timelines": message.timelines,
                         "left": message.left})
    return ServerSentEventMessage(data=body.decode(), event="entry", id=message.id)


def _reset(message: str) -> ServerSentEventMessage:
    return ServerSentEventMessage(event="reset", data=_json.encode({"message": message}).decode())


async def _stream(
    request: Request[Any, Any, Any], reader: LiveReader, after: str, reset: bool,
    entity: str | None, topic: str | None, keepalive: float,
) -> AsyncIterator[ServerSentEventMessage]:
    # data=None: Litestar's default "" writes an empty `data:` line, which browsers
    # dispatch as an empty "message" event.
    # The id: a client that drops before any entry or keep-alive reached it reconnects
    # from here, not from "now", and gets what was published in between.
    yield ServerSentEventMessage(data=None, comment="connected", retry=RETRY_MS, id=after)
    if reset:
        yield _reset("entries after Last-Event-ID were trimmed; reload the timeline")
    told = reset  # the gap at `after` is the one just reported: one reset for it
    quiet_since = time.monotonic()
    while not _closing(request):
        # A client reading slower than entries are published falls behind the cap
        # while connected, as a reconnecting one can.
        messages, trimmed, through = await reader.read_checked(after, POLL_MS)
        if trimmed and not told:
            yield _reset("entries were trimmed before this stream sent them; "
                         "reload the timeline")
        told = told and through == after
        sent = False
        for message in messages:
            if matches(message, entity, topic):
                sent = True
                yield _event(message)
        after = through
        if sent:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= keepalive:
            # The id moves the client's Last-Event-ID past entries its filters skipped,
            # so a reconnect does not rescan them (or find them trimmed).
            yield ServerSentEventMessage(data=None, comment="keep-alive", id=after)
            quiet_since = time.monotonic()


@get("/v1/live", summary="Server-Sent Events of timeline entries as they are projected",
     responses=responses(400, *AUTH))
async def live(
    request: Request[Any, Any, Any],
    services: ServicesDep,
    entity: FromQuery[str | None] = None,
    topic: FromQuery[str | None] = None,
    keepalive: Annotated[float, Parameter(
        ge=1, le=300, description="seconds between keep-alive comments on a quiet stream")] = 15,
) -> ServerSentEvent:
    last_id = request.headers.get("last-event-id") or None  # empty: the client has none
    _check(entity, topic, last_id)
    reader = LiveReader(services.client)
    # Fix the starting point before answering: whatever is published after the client
    # sees the response start is delivered.
    after = last_id or await reader.last_id()
    reset = bool(last_id) and await reader.missed_since(after)
    return ServerSentEvent(_stream(request, reader, after, reset, entity, topic, keepalive))
