"""The ingest stream's entry layouts and rejected copies (pure)."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest
from faststream.redis.parser.binary import BinaryMessageFormatV1

from services.ingest.entries import MAX_ENTRY_BYTES, decode_entry, rejected_copy

EVENT = {"specversion": "1.0", "id": "a", "source": "urn:t", "type": "mou.signed"}


def test_the_event_field_holds_one_json_object() -> None:
    assert decode_entry({b"event": msgspec.json.encode(EVENT), b"other": b"x"}) == (EVENT, [])


async def test_a_faststream_message_is_unwrapped() -> None:
    wrapped = await BinaryMessageFormatV1.encode(
        message=EVENT, reply_to=None, headers={"h": "v"}, correlation_id="c-1")
    assert decode_entry({b"__data__": wrapped}) == (EVENT, [])


def test_faststreams_older_json_envelope_is_unwrapped() -> None:
    legacy = msgspec.json.encode({"data": msgspec.json.encode(EVENT).decode(), "headers": {}})
    assert decode_entry({b"__data__": legacy}) == (EVENT, [])


@pytest.mark.parametrize(("fields", "complaint"), [
    ({b"payload": b"{}"}, "needs an 'event' field"),
    ({b"event": b"{}", b"__data__": b"{}"}, "not both"),
    ({b"event": b"{not json"}, "not valid JSON"),
    ({b"event": b"[" * 5000 + b"]" * 5000}, "not valid JSON"),  # beyond any recursion limit
    ({b"event": b"[{}, {}]"}, "one CloudEvent JSON object"),
    ({b"event": b"\"a string\""}, "one CloudEvent JSON object"),
    ({b"event": b" " * (MAX_ENTRY_BYTES + 1) + b"{}"}, "at most"),
    ({b"__data__": b"x" * (MAX_ENTRY_BYTES + 1)}, "at most"),
])
def test_what_cannot_hold_an_event_is_explained(fields: dict[bytes, bytes], complaint: str) -> None:
    decoded, errors = decode_entry(fields)
    assert decoded is None
    [error] = errors
    assert complaint in error.message


def test_a_rejected_copy_keeps_every_original_field_and_says_why() -> None:
    from events.errors import FieldError

    when = dt.datetime(2024, 2, 1, 12, 0, tzinfo=dt.UTC)
    copy = rejected_copy(b"5-0", {b"event": b"{}", b"errors": b"mine", b"note": b"n"},
                         [FieldError("id", "required")], when)
    assert copy[b"event"] == b"{}" and copy[b"note"] == b"n"
    assert copy[b"original.errors"] == b"mine"
    assert msgspec.json.decode(copy[b"errors"]) == [{"path": "id", "message": "required"}]
    assert copy[b"ingest_id"] == b"5-0"
    assert copy[b"rejectedtime"] == b"2024-02-01T12:00:00.000000Z"
