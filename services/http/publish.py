"""POST /v1/events: one event or a batch, validated whole, then appended."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, post
from redis.exceptions import RedisError

from events.envelope import MAX_BATCH_BYTES, MAX_BATCH_EVENTS, NewEvent, validate_event
from events.errors import EventValidationError
from services.bootstrap import Services
from services.http.auth import principal
from services.http.errors import ApiError
from services.http.metrics import count_appended
from services.log.append import (
    AppendResult,
    BatchRejected,
    ContentionError,
    now_rfc3339,
    position_token,
)

CONTENT_TYPES = ("application/json", "application/cloudevents+json",
                 "application/cloudevents-batch+json")


class PublishResponse(msgspec.Struct):
    results: list[AppendResult]
    position: str


def _content_type(request: Request[Any, Any, Any]) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _decode(body: bytes, content_type: str) -> list[Any]:
    if len(body) > MAX_BATCH_BYTES:
        raise ApiError(413, "too-large", f"a request is at most {MAX_BATCH_BYTES} bytes")
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise ApiError(400, "malformed-json", f"the body is not valid JSON: {exc}") from None
    if isinstance(decoded, list):
        if content_type == "application/cloudevents+json":
            raise ApiError(400, "bad-request", "a batch needs a JSON array content type")
        if len(decoded) > MAX_BATCH_EVENTS:
            raise ApiError(413, "too-large", f"a batch is at most {MAX_BATCH_EVENTS} events")
        if not decoded:
            raise ApiError(422, "validation", "a batch needs at least one event",
                           errors=[{"index": None, "id": None, "path": "",
                                    "message": "empty batch"}])
        return decoded
    if content_type == "application/cloudevents-batch+json":
        raise ApiError(400, "bad-request", "a batch content type needs a JSON array")
    return [decoded]


def validate_all(raw_events: list[Any]) -> list[NewEvent]:
    """All-or-nothing: every problem of every event, or every event valid."""
    today = now_rfc3339()[:10]
    valid, errors = [], []
    for index, raw in enumerate(raw_events):
        try:
            valid.append(validate_event(raw, today))
        except EventValidationError as exc:
            ident = raw.get("id") if isinstance(raw, dict) else None
            errors += [{"index": index, "id": ident if isinstance(ident, str) else None,
                        "path": e.path, "message": e.message} for e in exc.errors]
    if errors:
        raise ApiError(422, "validation", f"{len(errors)} problem(s); nothing was written",
                       errors=errors)
    return valid


@post("/v1/events", status_code=200, summary="Publish one event or a batch")
async def publish(request: Request[Any, Any, Any], services: Services) -> Response[PublishResponse]:
    content_type = _content_type(request)
    if content_type not in CONTENT_TYPES:
        raise ApiError(415, "unsupported-media-type",
                       f"content type must be one of {', '.join(CONTENT_TYPES)}")
    events = validate_all(_decode(await request.body(), content_type))
    try:
        results = await services.appender.append(events, recordedby=principal(request))
    except BatchRejected as exc:
        raise ApiError(422, "validation", "nothing was written", errors=[
            {"index": i, "id": ident, "path": e.path, "message": e.message}
            for i, ident, e in exc.errors]) from None
    except (ContentionError, RedisError) as exc:
        # Some partitions may be written: a retry answers those with `duplicate`.
        raise ApiError(503, "unavailable", f"the log could not be written now ({exc}); "
                       "retrying the same request is safe", retry_after=1) from None
    count_appended(request.app, events, results)
    conflict = any(r.status == "conflict" for r in results)
    return Response(PublishResponse(results, position_token(results)),
                    status_code=409 if conflict else 200)
