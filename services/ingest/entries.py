"""What an entry of the ingest stream may hold, and what a rejected copy holds (pure).

Accepted layouts (DESIGN 2), one event per entry:
- `event`: one CloudEvent JSON object, as written by
  `XADD timeline:ingest * event '{"specversion": "1.0", ...}'`;
- `__data__`: a FastStream message whose body is one CloudEvent JSON object,
  as written by `RedisBroker.publish(event, stream="timeline:ingest")`
  (FastStream's binary envelope, or its older JSON envelope).
Other fields are ignored (and kept in a rejected copy). An entry with both,
neither, a body that is not one JSON object, or more than MAX_ENTRY_BYTES is
rejected with a reason.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from faststream.redis.parser.binary import BinaryMessageFormatV1

from events.codec import UNREADABLE
from events.envelope import MAX_EVENT_BYTES
from events.errors import FieldError

EVENT_FIELD = b"event"
FASTSTREAM_FIELD = b"__data__"
# Whitespace and escapes may make the JSON larger than its canonical form; past
# this it cannot be a valid event, so it is not even decoded.
MAX_ENTRY_BYTES = 4 * MAX_EVENT_BYTES
# Fields added to a rejected copy; an original field of the same name is kept as `original.<name>`.
ADDED = (b"errors", b"ingest_id", b"rejectedtime")

_json = msgspec.json.Encoder()


def decode_entry(fields: dict[bytes, bytes]) -> tuple[Any, list[FieldError]]:
    """(the decoded event object, []) or (None, why the entry cannot hold an event)."""
    if EVENT_FIELD in fields and FASTSTREAM_FIELD in fields:
        return None, [FieldError("", "an entry holds either an 'event' field or a FastStream "
                                     "message ('__data__'), not both")]
    if EVENT_FIELD in fields:
        body = fields[EVENT_FIELD]
    elif FASTSTREAM_FIELD in fields:
        if len(fields[FASTSTREAM_FIELD]) > MAX_ENTRY_BYTES:
            return None, [_too_large()]
        body, _headers = BinaryMessageFormatV1.parse(fields[FASTSTREAM_FIELD])
    else:
        return None, [FieldError("", "an entry needs an 'event' field holding one CloudEvent "
                                     "JSON object (or a FastStream message)")]
    if len(body) > MAX_ENTRY_BYTES:
        return None, [_too_large()]
    try:
        decoded = msgspec.json.decode(body)
    except UNREADABLE as exc:
        return None, [FieldError("", f"the event is not valid JSON: {exc}")]
    if not isinstance(decoded, dict):
        return None, [FieldError("", "an entry holds one CloudEvent JSON object "
                                     "(publish a batch as one entry per event)")]
    return decoded, []


def _too_large() -> FieldError:
    return FieldError("", f"an entry is at most {MAX_ENTRY_BYTES} bytes "
                          f"(an event at most {MAX_EVENT_BYTES} once encoded)")


def rejected_copy(
    ingest_id: bytes, fields: dict[bytes, bytes], errors: list[FieldError],
    now: dt.datetime | None = None,
) -> dict[bytes, bytes]:
    """The entry for `timeline:ingest:rejected`: the original fields plus why."""
    copy = {(b"original." + k if k in ADDED else k): v for k, v in fields.items()}
    copy[b"errors"] = _json.encode([{"path": e.path, "message": e.message} for e in errors])
    copy[b"ingest_id"] = ingest_id
    when = now or dt.datetime.now(dt.UTC)
    copy[b"rejectedtime"] = when.isoformat(timespec="microseconds").replace("+00:00", "Z").encode()
    return copy
