"""POST /v1/events: one event or a batch, validated whole, then appended."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
import structlog
from litestar import Request, Response, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)
from redis.exceptions import RedisClusterException, RedisError

from events.codec import UNREADABLE
from events.envelope import MAX_BATCH_BYTES, MAX_BATCH_EVENTS, NewEvent, validate_event
from events.errors import EventValidationError, FieldError
from events.refs import ENTITY_ID_PATTERN
from services.bootstrap import Services
from services.http.auth import principal
from services.http.bodies import read_body
from services.http.errors import AUTH, ApiError, responses
from services.http.metrics import count_appended
from services.log.append import (
    Appender,
    AppendResult,
    BatchRejected,
    ContentionError,
    now_rfc3339,
    position_token,
)

CONTENT_TYPES = ("application/json", "application/cloudevents+json",
                 "application/cloudevents-batch+json")

log = structlog.get_logger("http")
Problem = dict[str, Any]  # one item of a 422's "errors": index, id, path, message


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
    except UNREADABLE as exc:
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


def validate_each(raw_events: list[Any]) -> tuple[list[tuple[int, NewEvent]], list[Problem]]:
    """The valid events with their index, and every problem of the others."""
    today = now_rfc3339()[:10]
    valid, errors = [], []
    for index, raw in enumerate(raw_events):
        try:
            valid.append((index, validate_event(raw, today)))
        except EventValidationError as exc:
            errors += [_problem(index, _identity(raw)[1], e) for e in exc.errors]
    return valid, errors


async def target_problems(
    appender: Appender, raw_events: list[Any], valid: list[tuple[int, NewEvent]]
) -> list[Problem]:
    """The problems the append would find in the targets of the valid amendments (nothing
    is written). An amendment of an earlier event of the request that failed validation
    is left out: that event's problems are listed, and what it becomes once fixed decides
    whether the amendment fits it (blaming the amendment now would send the client to fix
    what may not be broken)."""
    valid_at = {index for index, _ in valid}
    first: dict[tuple[str | None, str | None], int] = {}  # as the append judges: the first
    for index, raw in enumerate(raw_events):
        first.setdefault(_identity(raw), index)

    def awaits_its_target(index: int, event: NewEvent) -> bool:
        if event.amendment is None:
            return False
        target = first.get((event.source, event.amendment.target))
        return target is not None and target < index and target not in valid_at

    judged = [(index, event) for index, event in valid if not awaits_its_target(index, event)]
    found = await appender.target_problems([event for _, event in judged])
    return [_problem(judged[n][0], ident, error) for n, ident, error in found]


def _identity(raw: Any) -> tuple[str | None, str | None]:
    """(source, id) of a decoded item, each None when it is not a string."""
    if not isinstance(raw, dict):
        return None, None
    source, ident = raw.get("source"), raw.get("id")
    return (source if isinstance(source, str) else None,
            ident if isinstance(ident, str) else None)


def _problem(index: int, ident: str | None, error: FieldError) -> Problem:
    return {"index": index, "id": ident, "path": error.path, "message": error.message}


# The body is read raw (validate_each and target_problems name every problem of every event
# in one 422), so the handler signature cannot describe it: the operation does.
_EVENT = Schema(
    type=OpenAPIType.OBJECT,
    required=["specversion", "id", "source", "type", "subject", "data"],
    properties={
        "specversion": Schema(type=OpenAPIType.STRING, enum=["1.0"]),
        "id": Schema(type=OpenAPIType.STRING, pattern=r"^[A-Za-z0-9._:/@+-]{1,128}$"),
        "source": Schema(type=OpenAPIType.STRING, min_length=1, max_length=256,
                         description="URI-reference"),
        "type": Schema(type=OpenAPIType.STRING,
                       description="a catalog type (mou.signed, ...) or x-<name>.<verb>"),
        "subject": Schema(type=OpenAPIType.STRING, pattern=ENTITY_ID_PATTERN),
        "occurred": Schema(type=OpenAPIType.STRING, description="partial date (EDTF subset)"),
        "time": Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.DATE_TIME),
        "data": Schema(type=OpenAPIType.OBJECT, description="validated by the type's schema"),
        "expectedversion": Schema(type=OpenAPIType.INTEGER, minimum=0),
    },
    description="CloudEvents 1.0 structured JSON (DESIGN 3.1); lowercase extensions kept",
)
_BATCH = Schema(type=OpenAPIType.ARRAY, items=_EVENT, min_items=1, max_items=MAX_BATCH_EVENTS)


@dataclass
class PublishOperation(Operation):
    def __post_init__(self) -> None:
        self.request_body = RequestBody(required=True, content={
            "application/json": OpenAPIMediaType(schema=Schema(one_of=[_EVENT, _BATCH])),
            "application/cloudevents+json": OpenAPIMediaType(schema=_EVENT),
            "application/cloudevents-batch+json": OpenAPIMediaType(schema=_BATCH),
        })


PUBLISH_RESPONSES = {
    **responses(400, *AUTH, 408, 413, 415, 422, 503),
    409: ResponseSpec(data_container=PublishResponse,
                      description="some event reuses an id with other content: those are "
                                  "`conflict`, the rest are appended and listed"),
}


@post("/v1/events", status_code=200, summary="Publish one event or a batch",
      responses=PUBLISH_RESPONSES, operation_class=PublishOperation)
async def publish(request: Request[Any, Any, Any]) -> Response[PublishResponse]:
    # The adapters straight from the app state, not through dependency injection: the
    # hottest route skips resolving a dependency on every request.
    services: Services = request.app.state.services
    content_type = _content_type(request)
    if content_type not in CONTENT_TYPES:
        raise ApiError(415, "unsupported-media-type",
                       f"content type must be one of {', '.join(CONTENT_TYPES)}")
    raw_events = _decode(await read_body(request), content_type)
    valid, errors = validate_each(raw_events)
    if errors:  # all or nothing, and one answer names every problem
        errors += await target_problems(services.appender, raw_events, valid)
        errors.sort(key=lambda problem: problem["index"])  # stable: an event's keep their order
        raise ApiError(422, "validation", f"{len(errors)} problem(s); nothing was written",
                       errors=errors)
    events = [event for _, event in valid]
    try:
        results = await services.appender.append(events, recordedby=principal(request))
    except BatchRejected as exc:  # every event valid, some target not
        raise ApiError(422, "validation", f"{len(exc.errors)} problem(s); nothing was written",
                       errors=[_problem(i, ident, e) for i, ident, e in exc.errors]) from None
    except (ContentionError, RedisError, RedisClusterException) as exc:
        # Some partitions may be written: a retry answers those with `duplicate`. (A
        # cluster's slot map without a node for a partition's slot, mid-failover, is a
        # RedisClusterException, not a RedisError.) A Redis error's text names servers
        # and scripts: it goes to the log; our own (replicas short, say) to the client.
        log.warning("log unavailable", error=str(exc))
        why = f" ({exc})" if isinstance(exc, ContentionError) else ""
        raise ApiError(503, "unavailable", f"the log could not be written now{why}; "
                       "retrying the same request is safe", retry_after=1) from None
    count_appended(request.app, events, results)
    conflict = any(r.status == "conflict" for r in results)
    return Response(PublishResponse(results, position_token(results)),
                    status_code=409 if conflict else 200)
