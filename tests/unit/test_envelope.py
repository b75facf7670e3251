"""The CloudEvents envelope (DESIGN 3.1): each rule, and robustness on arbitrary input."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from events import catalog
from events.codec import SERVER_SET, canonical_bytes, content_digest
from events.dates import Precision
from events.envelope import MAX_EVENT_BYTES, NewEvent, parse_timestamp, validate_event
from events.errors import EventValidationError


def event(**changes: Any) -> dict[str, Any]:
    """A valid MOU event; keyword `name=None` removes an attribute."""
    raw: dict[str, Any] = {
        "specversion": "1.0",
        "id": "demo-mou-lgai-jax",
        "source": "urn:timeline:demo:korean-business-daily",
        "type": "mou.signed",
        "subject": "lg-ai-research",
        "occurred": "2023-12?",
        "data": {
            "parties": [
                {"id": "lg-ai-research", "name": "LG AI Research", "kind": "org"},
                {"id": "jax", "name": "The Jackson Laboratory", "kind": "org"},
            ]
        },
    }
    for name, value in changes.items():
        if value is None:
            raw.pop(name, None)
        else:
            raw[name] = value
    return raw


def errors_of(raw: Any, **kwargs: Any) -> dict[str, str]:
    with pytest.raises(EventValidationError) as info:
        validate_event(raw, **kwargs)
    assert info.value.errors, "an EventValidationError must carry at least one error"
    return {e.path: e.message for e in info.value.errors}


# --- a valid event --------------------------------------------------------------------


def test_valid_event() -> None:
    raw = event()
    new = validate_event(copy.deepcopy(raw))
    assert isinstance(new, NewEvent)
    assert (new.source, new.id, new.subject, new.type) == (
        "urn:timeline:demo:korean-business-daily",
        "demo-mou-lgai-jax",
        "lg-ai-research",
        "mou.signed",
    )
    assert new.attrs == raw
    assert new.occurred.text == "2023-12?"
    assert new.occurred.precision == Precision.MONTH
    assert new.occurred.qualifier == "?"
    assert isinstance(new.payload, catalog.MouSigned)
    assert [p.id for p in new.payload.parties] == ["lg-ai-research", "jax"]
    assert new.expected_version is None
    assert new.digest == content_digest(new.attrs)


def test_input_is_not_modified() -> None:
    raw = event(occurred=None, time="2024-02-11T09:00:00+09:00", expectedversion=0)
    before = copy.deepcopy(raw)
    validate_event(raw)
    assert raw == before


@pytest.mark.parametrize("value", [[], "event", None, 1, [event()]])
def test_event_must_be_an_object(value: Any) -> None:
    assert errors_of(value) == {"": "an event must be a JSON object"}


def test_every_problem_is_reported_at_once() -> None:
    raw = event(specversion="0.3", id="", subject="LG", sequence=3, Foo="x", data=None)
    assert set(errors_of(raw)) == {"specversion", "id", "subject", "sequence", "Foo", "data"}


# --- required attributes --------------------------------------------------------------


@pytest.mark.parametrize("name", ["specversion", "id", "source", "type", "subject", "data"])
def test_required_attributes(name: str) -> None:
    assert name in errors_of(event(**{name: None}))


@pytest.mark.parametrize("value", ["1", "0.3", "1.0 ", 1.0, 1])
def test_specversion_must_be_1_0(value: Any) -> None:
    assert set(errors_of(event(specversion=value))) == {"specversion"}


@pytest.mark.parametrize(
    "value", ["a", "A-Za-z0-9._:/@+-", "x" * 128, "urn:uuid:123e4567-e89b-12d3-a456-426614174000"]
)
def test_valid_ids(value: str) -> None:
    assert validate_event(event(id=value)).id == value


@pytest.mark.parametrize("value", ["", "x" * 129, "a b", "a\n", "é", "a#b", "a?b", 12, ["a"]])
def test_invalid_ids(value: Any) -> None:
    assert set(errors_of(event(id=value))) == {"id"}


@pytest.mark.parametrize(
    "value", ["urn:x", "https://example.com/feed?x=1#frag", "/relative/path", "s" * 256, "a%20b"]
)
def test_valid_sources(value: str) -> None:
    assert validate_event(event(source=value)).source == value


@pytest.mark.parametrize("value", ["", "s" * 257, "has space", "urn:x\n", "urn:é", 5, None])
def test_invalid_sources(value: Any) -> None:
    if value is None:
        assert "source" in errors_of(event(source=None))
    else:
        assert set(errors_of(event(source=value))) == {"source"}


@pytest.mark.parametrize("value", ["lg", "0", "a" * 128, "lg.ai_research-2"])
def test_valid_subjects(value: str) -> None:
    assert validate_event(event(subject=value)).subject == value


@pytest.mark.parametrize("value", ["", "LG", "-lg", ".lg", "_lg", "a" * 129, "lg\n", "lg ai", 7])
def test_invalid_subjects(value: Any) -> None:
    assert set(errors_of(event(subject=value))) == {"subject"}


@pytest.mark.parametrize("value", ["mou", "mou.sign", "MOU.signed", "x-acme", "X-acme.done",
                                   "x-acme.done\n", "", 3])
def test_unknown_types(value: Any) -> None:
    assert set(errors_of(event(type=value))) == {"type"}


def test_vendor_type_data_is_only_size_checked() -> None:
    new = validate_event(event(type="x-acme.shipped", data={"whatever": [1, {"a": None}]}))
    assert new.type == "x-acme.shipped"
    assert isinstance(new.payload, catalog.VendorData)
    assert new.attrs["data"] == {"whatever": [1, {"a": None}]}


@pytest.mark.parametrize("value", [[], "x", 1, True])
def test_data_must_be_an_object(value: Any) -> None:
    assert errors_of(event(data=value)) == {"data": "required: a JSON object"}


def test_data_errors_carry_the_data_prefix() -> None:
    raw = event(data={"parties": [{"name": "LG AI Research"}, {"id": "jax"}]})
    assert set(errors_of(raw)) == {"data.parties[0].id"}
    raw = event(data={"parties": [{"id": "a"}, {"id": "b"}], "colour": "red"})
    assert set(errors_of(raw)) == {"data.colour"}


# --- optional attributes ------------------------------------------------------------------


def test_datacontenttype() -> None:
    assert validate_event(event(datacontenttype="application/json")).attrs["datacontenttype"] == (
        "application/json"
    )
    for bad in ("text/plain", "application/cloudevents+json", "", 1):
        assert set(errors_of(event(datacontenttype=bad))) == {"datacontenttype"}


@pytest.mark.parametrize("name", ["correlationid", "causationid", "traceparent"])
def test_optional_string_attributes_are_kept(name: str) -> None:
    value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert validate_event(event(**{name: value})).attrs[name] == value
    assert set(errors_of(event(**{name: 5}))) == {name}
    assert set(errors_of(event(**{name: "x" * 513}))) == {name}


# --- server-set attributes --------------------------------------------------------------


@pytest.mark.parametrize("name", SERVER_SET)
def test_server_set_attributes_are_rejected_with_their_path(name: str) -> None:
    errors = errors_of(event(**{name: "2024-02-11T00:00:00Z" if "time" in name else 1}))
    assert set(errors) == {name}
    assert "server" in errors[name]


def test_every_documented_server_attribute_is_refused() -> None:
    for name in ("recordedtime", "recordedby", "partition", "sequence", "hash"):
        assert name in SERVER_SET


# --- extensions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("region", "apac"),
        ("priority", 3),
        ("weight", 0.5),
        ("internal", False),
        ("a" * 20, "x"),
        ("x1", ""),
        ("ext2024", -7),
    ],
)
def test_valid_extensions_are_kept(name: str, value: Any) -> None:
    new = validate_event(event(**{name: value}))
    assert new.attrs[name] == value
    assert type(new.attrs[name]) is type(value)


@pytest.mark.parametrize(
    "name", ["Region", "a" * 21, "my-ext", "my_ext", "ext.x", "é", " x", "x\n"]
)
def test_extension_names(name: str) -> None:
    errors = errors_of(event(**{name: "v"}))
    assert set(errors) == {name}
    assert "unknown attribute" in errors[name]


@pytest.mark.parametrize("value", [[1], {"a": 1}, None])
def test_extension_values(value: Any) -> None:
    raw = event()
    raw["ext"] = value  # `event()` treats None as "remove"
    errors = errors_of(raw)
    assert set(errors) == {"ext"}
    assert "string, number or boolean" in errors["ext"]


# --- occurred and time ----------------------------------------------------------------


def test_occurred_defaults_to_the_day_of_time_in_its_own_offset() -> None:
    new = validate_event(event(occurred=None, time="2024-02-11T01:30:00+09:00"))
    assert new.occurred.text == "2024-02-11"  # 2024-02-10 in UTC: the publisher's day wins
    assert new.occurred.precision == Precision.DAY
    assert new.occurred.qualifier == ""
    assert new.attrs["occurred"] == "2024-02-11"
    assert new.attrs["time"] == "2024-02-11T01:30:00+09:00"


def test_occurred_wins_over_time() -> None:
    new = validate_event(event(occurred="2023-12?", time="2024-02-11T10:00:00Z"))
    assert new.attrs["occurred"] == "2023-12?"
    assert new.attrs["time"] == "2024-02-11T10:00:00Z"


def test_occurred_or_time_is_required() -> None:
    assert set(errors_of(event(occurred=None))) == {"occurred"}


def test_today_does_not_date_ordinary_events() -> None:
    assert set(errors_of(event(occurred=None), today="2024-02-11")) == {"occurred"}


@pytest.mark.parametrize("event_type", [catalog.CORRECTED, catalog.RETRACTED])
def test_amendments_without_date_are_dated_today(event_type: str) -> None:
    data = {"target": "demo-mou-lgai-jax", "reason": "wrong", "occurred": "2023-11"}
    if event_type == catalog.RETRACTED:
        del data["occurred"]
    raw = event(type=event_type, occurred=None, data=data)
    new = validate_event(raw, today="2024-03-01")
    assert new.attrs["occurred"] == "2024-03-01"
    assert new.occurred.precision == Precision.DAY
    assert set(errors_of(raw)) == {"occurred"}  # no `today`: still required


def test_correction_checks_its_corrected_occurred() -> None:
    data = {"target": "demo-mou-lgai-jax", "reason": "wrong", "occurred": "November 2023"}
    assert set(errors_of(event(type=catalog.CORRECTED, data=data))) == {"data.occurred"}


@pytest.mark.parametrize("value", ["2023-13", "last year", "", 2023, None])
def test_invalid_occurred(value: Any) -> None:
    raw = event()
    raw["occurred"] = value
    assert set(errors_of(raw)) == {"occurred"}


@pytest.mark.parametrize(
    "value",
    [
        "2024-02-11T10:00:00Z",
        "2024-02-11t10:00:00z",
        "2024-02-11T10:00:00.123456+09:00",
        "2024-02-11T10:00:00.1-05:30",
        "2024-02-29T23:59:59+00:00",
    ],
)
def test_valid_times(value: str) -> None:
    assert validate_event(event(time=value)).attrs["time"] == value
    assert parse_timestamp(value, "time").tzinfo is not None


@pytest.mark.parametrize(
    "value",
    [
        "2024-02-11T10:00:00",  # no offset
        "2024-02-11 10:00:00Z",
        "2024-02-11",
        "2024-02-30T10:00:00Z",
        "2024-02-11T24:00:00Z",
        "2024-02-11T10:00:60Z",
        "2024-02-11T10:00:00+25:00",
        "2024-02-11T10:00:00Z\n",
        "٢٠٢٤-02-11T10:00:00Z",
        "",
        1707645600,
    ],
)
def test_invalid_times(value: Any) -> None:
    assert set(errors_of(event(time=value))) == {"time"}
    assert set(errors_of(event(time=value, occurred=None))) == {"time"}


# --- expectedversion --------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 1, 2**40])
def test_expectedversion_is_taken_out_of_the_attributes(value: int) -> None:
    new = validate_event(event(expectedversion=value))
    assert new.expected_version == value
    assert "expectedversion" not in new.attrs
    assert new.digest == validate_event(event()).digest


@pytest.mark.parametrize("value", [-1, 1.0, 1.5, "1", True, False, [1]])
def test_expectedversion_must_be_a_non_negative_integer(value: Any) -> None:
    errors = errors_of(event(expectedversion=value))
    assert set(errors) == {"expectedversion"}


def test_expectedversion_null_is_rejected() -> None:
    raw = event()
    raw["expectedversion"] = None
    assert set(errors_of(raw)) == {"expectedversion"}


# --- size ------------------------------------------------------------------------------


def _padded(total: int) -> dict[str, Any]:
    raw = event(pad="")
    base = len(canonical_bytes(validate_event(raw).attrs))
    return event(pad="x" * (total - base))


def test_event_of_exactly_64_kib_is_accepted() -> None:
    raw = _padded(MAX_EVENT_BYTES)
    new = validate_event(raw)
    assert len(canonical_bytes(new.attrs)) == MAX_EVENT_BYTES == 64 * 1024


def test_event_over_64_kib_is_rejected() -> None:
    errors = errors_of(_padded(MAX_EVENT_BYTES + 1))
    assert list(errors) == [""]
    assert str(MAX_EVENT_BYTES) in errors[""]


def test_size_counts_encoded_bytes_not_characters() -> None:
    raw = _padded(MAX_EVENT_BYTES)
    raw["pad"] = raw["pad"][:-1] + "é"  # one character, two bytes
    assert list(errors_of(raw)) == [""]


def test_expectedversion_does_not_count_towards_the_size() -> None:
    raw = _padded(MAX_EVENT_BYTES)
    raw["expectedversion"] = 12345
    assert validate_event(raw).expected_version == 12345


# --- digest (identity of content) ------------------------------------------------------


def test_digest_ignores_key_order_and_changes_with_content() -> None:
    raw = event()
    reordered = dict(reversed(list(raw.items())))
    reordered["data"] = {"parties": list(raw["data"]["parties"])}
    assert validate_event(reordered).digest == validate_event(raw).digest
    changed = event(data={"parties": raw["data"]["parties"], "title": "MOU"})
    assert validate_event(changed).digest != validate_event(raw).digest


def test_digest_is_the_same_whether_occurred_was_given_or_derived() -> None:
    derived = validate_event(event(occurred=None, time="2024-02-11T10:00:00Z"))
    given_ = validate_event(event(occurred="2024-02-11", time="2024-02-11T10:00:00Z"))
    assert derived.attrs == given_.attrs
    assert derived.digest == given_.digest


# --- robustness -------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
attribute_names = st.sampled_from(
    [
        *event(),
        "time",
        "datacontenttype",
        "expectedversion",
        "correlationid",
        *SERVER_SET,
        "ext",
        "Ext",
        "a" * 21,
    ]
) | st.text(max_size=22)
data_keys = st.sampled_from(
    [
        "parties",
        "title",
        "value",
        "follows",
        "goals",
        "visitor",
        "place",
        "host",
        "investor",
        "amount",
        "horizon",
        "acquirer",
        "target",
        "recipient",
        "award",
        "rank",
        "of",
        "provider",
        "client",
        "application",
        "reason",
        "occurred",
        "data",
        "headline",
        "topics",
        "sources",
    ]
) | st.text(max_size=8)
types = st.sampled_from([*catalog.SCHEMA_VERSIONS, "x-acme.shipped", "nope"])


def _check_outcome(raw: Any) -> None:
    try:
        new = validate_event(raw, today="2024-02-11")
    except EventValidationError as exc:
        assert exc.errors
        assert all(isinstance(e.path, str) and e.message for e in exc.errors)
        return
    assert isinstance(new, NewEvent)
    assert new.occurred.earliest <= new.occurred.latest
    assert len(canonical_bytes(new.attrs)) <= MAX_EVENT_BYTES


@given(st.dictionaries(attribute_names, json_values, max_size=12))
def test_random_objects_raise_only_validation_errors(raw: dict[str, Any]) -> None:
    _check_outcome(raw)


@given(json_values)
def test_random_json_values_raise_only_validation_errors(raw: Any) -> None:
    _check_outcome(raw)


@given(
    types,
    st.dictionaries(attribute_names, json_values, max_size=3),
    st.dictionaries(data_keys, json_values, max_size=6),
)
def test_mutated_valid_events_raise_only_validation_errors(
    event_type: str, attrs: dict[str, Any], data: dict[str, Any]
) -> None:
    raw = event(type=event_type)
    raw.update(attrs)
    if isinstance(raw.get("data"), dict):
        raw["data"] = {**raw["data"], **data}
    _check_outcome(raw)


entity_refs = st.fixed_dictionaries(
    {"id": st.sampled_from(["lg", "jax", "LG", "", "a b"])},
    optional={"name": st.text(max_size=5), "kind": st.sampled_from(["org", "person", "x"])},
)


@given(
    types,
    st.dictionaries(
        data_keys, entity_refs | json_values | st.lists(entity_refs, max_size=3), max_size=6
    ),
)
def test_random_data_for_each_type_raise_only_validation_errors(
    event_type: str, data: dict[str, Any]
) -> None:
    _check_outcome(event(type=event_type, data=data, occurred="2024"))


def nested(levels: int) -> dict[str, Any]:
    """`data` nesting `levels` arrays and objects deep, counting `data` itself."""
    value: Any = []
    for _ in range(levels - 2):
        value = [value]
    return {"x": value}


def test_data_nests_at_most_64_levels() -> None:
    assert validate_event(event(type="x-test.deep", data=nested(64)))
    errors = errors_of(event(type="x-test.deep", data=nested(65)))
    assert "more than 64 levels" in errors["data"]
    assert "more than 64 levels" in errors_of(event(type="x-test.deep", data=nested(950)))["data"]
    brackets = event(type="x-test.deep", data={"text": "[{" * 200})  # in a string: no nesting
    assert validate_event(brackets)
