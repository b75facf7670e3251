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


@pytest.mark.parametrize("text", [
    '[{"a": 1}]\x0c', '\xa0[{"a": 1}]', '\xa0{\n  "a": 1\n}', '{\n  "a": 1\n}\u2028',
    ' {"a":\n1}\x0c', '\u3000{\n"a": 1}\x85',
])
def test_a_document_may_have_any_white_space_around_it(text: str) -> None:
    records = read_events(text)
    assert len(records) == 1 and list(records) == [(1, {"a": 1})]


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


@pytest.mark.parametrize("ascii_only", [True, False])
def test_json_lines_are_decoded_one_at_a_time(ascii_only: bool) -> None:
    # Not ASCII, a failed decode of the whole text would keep a UTF-8 copy of it.
    text = "".join(json.dumps({**event, "note": "Zürich, 서울"}, ensure_ascii=ascii_only) + "\n"
                   for event in factory.story(3000))
    made = _peak(lambda: read_events(text))  # first: nothing is cached on `text` yet
    records = read_events(text)

    def one_at_a_time() -> None:
        for _ in records:
            pass

    held_at_once = _peak(lambda: list(records))
    assert made < held_at_once / 20  # counting decodes nothing
    assert _peak(one_at_a_time) < held_at_once / 20
