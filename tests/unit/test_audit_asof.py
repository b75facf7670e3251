"""The as-of index encoding (pure) and `as_of` parameter parsing."""

from __future__ import annotations

import msgspec
import pytest

from events.errors import EventValidationError
from events.stored import StoredEvent
from projections import asof
from projections.entry import member
from projections.fold import Timelines
from projections.writes import encode_change
from services.queries import BadQuery, parse_as_of, parse_params


def test_stamp_is_the_digits_of_recordedtime() -> None:
    assert asof.stamp("2024-02-11T09:30:01.000123Z") == "20240211093001000123"
    assert asof.stamp("2024-02-11T09:30:01Z") == "20240211093001000000"
    assert asof.stamp("2024-02-11T09:30:01.000123Z") < asof.OPEN


@pytest.mark.parametrize(("given", "expected"), [
    ("2024-02-11T18:30:01+09:00", "2024-02-11T09:30:01.000000Z"),
    ("2024-02-11T09:30:01.5Z", "2024-02-11T09:30:01.500000Z"),
    ("2024-02-11t09:30:01z", "2024-02-11T09:30:01.000000Z"),
    ("2024-02-11T18:30:01 09:00", "2024-02-11T09:30:01.000000Z"),  # "+" unencoded in a URL
    ("2024-02-10T23:00:00-10:30", "2024-02-11T09:30:00.000000Z"),
])
def test_as_of_is_normalised_to_utc_microseconds(given: str, expected: str) -> None:
    assert parse_as_of(given) == expected


@pytest.mark.parametrize(
    "bad", ["yesterday", "2024-02-11", "2024-02-11T09:30:01", "2024-13-01T00:00:00Z"])
def test_a_bad_as_of_names_the_field(bad: str) -> None:
    with pytest.raises(EventValidationError) as caught:
        parse_as_of(bad)
    assert caught.value.errors[0].path == "as_of"
    with pytest.raises(BadQuery) as query:
        parse_params({"as_of": bad})
    assert [e.path for e in query.value.errors] == ["as_of"]


def test_ever_members_sort_like_live_members_and_say_when_they_held() -> None:
    live = "20231201" + "1" + "2024021109300100012" + "0" + "urn:t\x1fe-1\x1f20231231ambu.signed"
    first = live + asof.suffix("20240211093001000120", "20240301000000000000", 7)
    current = live + asof.suffix("20240301000000000000", asof.OPEN, 9)
    assert first.startswith(live) and sorted([current, first]) == [first, current]
    assert asof.split(first) == (live, "20240211093001000120", "20240301000000000000", "7")
    assert not asof.visible(first, "20240211093001000119")
    assert asof.visible(first, "20240211093001000120")
    assert not asof.visible(first, "20240301000000000000")  # the next version holds from then
    assert asof.visible(current, "20240301000000000000") and asof.visible(current, "29991231")
    assert asof.superseded_field("urn:t\x1fe-1", 7) == "urn:t\x1fe-1\x1f7"


def _event(ident: str, kind: str, data: dict[str, object], sequence: int, recorded: str,
           occurred: str = "2023-12") -> StoredEvent:
    return StoredEvent(id=ident, source="urn:t", type=kind, subject="acme", occurred=occurred,
                       data=data, recordedtime=recorded, recordedby="t", partition=2,
                       sequence=sequence)


def test_a_change_carries_the_versions_it_opens_and_closes() -> None:
    model = Timelines()
    parties = {"parties": [{"id": "acme"}, {"id": "beta"}]}
    original = model.apply(_event("e", "mou.signed", parties, 4, "2024-01-01T00:00:00.000001Z"))
    encoded = encode_change(4, original)
    assert encoded[11] == "20240101000000000001" + "00002" + "000000000004"  # name order
    assert encoded[12:] == ["", "", "", 0]  # never amended: no as-of index member
    assert asof.live_visible(encoded[2], "20240101000000000001")
    assert not asof.live_visible(encoded[2], "20240101000000000000")

    fix = model.apply(_event("c", "event.corrected",
                             {"target": "e", "reason": "r", "occurred": "2024-02"}, 9,
                             "2024-03-05T10:00:00.000000Z", occurred="2024-03-05"))
    encoded = encode_change(9, fix)
    assert encoded[2] == member(fix.entry) and encoded[5] == member(fix.previous)  # type: ignore[arg-type]
    assert encoded[12] == asof.suffix("20240305100000000000", asof.OPEN, 9)
    assert encoded[13] == ""  # the first version was never in the index: nothing to remove
    assert encoded[14] == asof.suffix("20240101000000000001", "20240305100000000000", 4)
    assert encoded[15] == 4
    assert not asof.live_visible(encoded[2], "29991231000000000000")  # amended: the index says

    gone = model.apply(_event("r", "event.retracted", {"target": "e", "reason": "no"}, 12,
                              "2024-04-01T00:00:00.000000Z", occurred="2024-04-01"))
    encoded = encode_change(12, gone)
    assert encoded[12] == asof.suffix("20240401000000000000", asof.OPEN, 12)
    assert encoded[13] == asof.suffix("20240305100000000000", asof.OPEN, 9)
    assert encoded[14] == asof.suffix("20240305100000000000", "20240401000000000000", 9)
    history = msgspec.json.decode(encoded[8])
    assert [v["position"] for v in history] == ["2-4", "2-9", "2-12"]
