"""services.publishing.read_events: JSON documents and JSON lines as numbered records."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from services.publishing import Unusable, read_events
from tests import factory


def test_json_lines_are_numbered_by_line_and_blank_lines_skipped() -> None:
    text = '{"a": 1}\n\n  \n{"b": "x\u2028y"}\r\n{"c": \n{"d": 4}'
    records = read_events(text)
    assert len(records) == 4
    got = list(records)
    assert [number for number, _ in got] == [1, 4, 5, 6]
    assert got[0][1] == {"a": 1} and got[1][1] == {"b": "x\u2028y"} and got[3][1] == {"d": 4}
    assert isinstance(got[2][1], Unusable) and "malformed JSON" in got[2][1].reasons[0]
    assert list(records) == got  # read again, the same


@pytest.mark.parametrize(("text", "count"), [
    ("", 0), ("\n\n", 0), ('{"a": 1}', 1), ('{"a": 1}\n', 1), ('{"a": 1}\n{"b": 2}\n', 2),
    ('[{"a": 1}, {"b": 2}, 3]', 3), ("[]", 0), ('{\n  "a": 1\n}\n', 1),
])
def test_the_count_is_the_number_of_records(text: str, count: int) -> None:
    records = read_events(text)
    assert len(records) == len(list(records)) == count


def test_documents_are_numbered_by_position() -> None:
    assert list(read_events('[{"a": 1}, {"b": 2}]')) == [(1, {"a": 1}), (2, {"b": 2})]
    assert list(read_events('{\n  "a": 1\n}')) == [(1, {"a": 1})]


@pytest.mark.parametrize("text", ['[{"a": 1}, {"b"', '{\n  "a": 1,\n  "b": [1, 2\n'])
def test_a_broken_document_raises_before_any_record_is_taken(text: str) -> None:
    with pytest.raises(msgspec.DecodeError):
        read_events(text)


def _peak(work: Callable[[], Any]) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_json_lines_are_decoded_one_at_a_time() -> None:
    text = "".join(json.dumps(event) + "\n" for event in factory.story(3000))
    records = read_events(text)

    def one_at_a_time() -> None:
        for _ in records:
            pass

    held_at_once = _peak(lambda: list(records))
    assert _peak(lambda: read_events(text)) < held_at_once / 20  # counting decodes nothing
    assert _peak(one_at_a_time) < held_at_once / 20
