"""Partial dates (DESIGN 3.4): parsing, spans, qualifiers, intervals, ordering."""

from __future__ import annotations

import calendar
import datetime as dt
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from events.dates import PartialDate, Precision, day_of, parse_partial_date, sort_key
from events.errors import EventValidationError

D = dt.date

# --- examples -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "precision", "qualifier", "earliest", "latest"),
    [
        ("2023", Precision.YEAR, "", D(2023, 1, 1), D(2023, 12, 31)),
        ("2023-12", Precision.MONTH, "", D(2023, 12, 1), D(2023, 12, 31)),
        ("2023-12?", Precision.MONTH, "?", D(2023, 12, 1), D(2023, 12, 31)),
        ("2024-02~", Precision.MONTH, "~", D(2024, 2, 1), D(2024, 2, 29)),
        ("2023-02%", Precision.MONTH, "%", D(2023, 2, 1), D(2023, 2, 28)),
        ("1900-02", Precision.MONTH, "", D(1900, 2, 1), D(1900, 2, 28)),
        ("2000-02", Precision.MONTH, "", D(2000, 2, 1), D(2000, 2, 29)),
        ("2024-02-11", Precision.DAY, "", D(2024, 2, 11), D(2024, 2, 11)),
        ("2024-02-29?", Precision.DAY, "?", D(2024, 2, 29), D(2024, 2, 29)),
        ("0001", Precision.YEAR, "", D(1, 1, 1), D(1, 12, 31)),
        ("9999-12-31", Precision.DAY, "", D(9999, 12, 31), D(9999, 12, 31)),
        # intervals: A's precision, A's earliest, B's latest
        ("2023-08-14/2023-08-18", Precision.DAY, "", D(2023, 8, 14), D(2023, 8, 18)),
        ("2023-07/2023-09", Precision.MONTH, "", D(2023, 7, 1), D(2023, 9, 30)),
        ("2023/2024-02-11", Precision.YEAR, "", D(2023, 1, 1), D(2024, 2, 11)),
        ("2023-12-01/2024", Precision.DAY, "", D(2023, 12, 1), D(2024, 12, 31)),
        ("2023-12?/2024-02", Precision.MONTH, "?", D(2023, 12, 1), D(2024, 2, 29)),
        ("2023-12/2024-02~", Precision.MONTH, "~", D(2023, 12, 1), D(2024, 2, 29)),
        ("2023~/2024?", Precision.YEAR, "%", D(2023, 1, 1), D(2024, 12, 31)),
        ("2023?/2024?", Precision.YEAR, "?", D(2023, 1, 1), D(2024, 12, 31)),
        ("2023%/2024~", Precision.YEAR, "%", D(2023, 1, 1), D(2024, 12, 31)),
        ("2023-08/2023-08", Precision.MONTH, "", D(2023, 8, 1), D(2023, 8, 31)),
        # an interval may end inside its start's span: it still ends no earlier than it starts
        ("2023/2023-01-01", Precision.YEAR, "", D(2023, 1, 1), D(2023, 1, 1)),
    ],
)
def test_parse_examples(
    text: str, precision: Precision, qualifier: str, earliest: dt.date, latest: dt.date
) -> None:
    parsed = parse_partial_date(text)
    assert parsed == PartialDate(text, precision, qualifier, earliest, latest)
    assert parsed.span_days == (latest - earliest).days


@pytest.mark.parametrize(
    "text",
    [
        "",
        "23",
        "202",
        "20233",
        "2023-1",
        "2023-001",
        "2023-13",
        "2023-00",
        "2023-02-30",
        "2023-02-29",
        "2023-04-31",
        "2023-12-00",
        "0000",
        "0000-01-01",
        "2023-12-01T00:00",
        "2023-12-01 ",
        " 2023",
        "2023\n",
        "2023-12?\n",
        "2023??",
        "2023?~",
        "?2023",
        "2023-?12",
        "２０２３",  # fullwidth digits
        "٢٠٢٣-١٢",  # Arabic-Indic digits
        "-2023",
        "+2023",
        "2023/",
        "/2023",
        "2023/2024/2025",
        "2023-02/2023-01",
        "2024/2023",
        "2023-08-18/2023-08-14",
        "2023-12-01/2023-11",
        "Dec 2023",
        "2023-W05",
        "2023-12-01..2023-12-05",
    ],
)
def test_invalid_texts_raise_validation_error(text: str) -> None:
    with pytest.raises(EventValidationError) as info:
        parse_partial_date(text)
    assert [e.path for e in info.value.errors] == ["occurred"]
    assert info.value.errors[0].message


@pytest.mark.parametrize("value", [2023, 2023.0, None, ["2023"], {"year": 2023}, b"2023"])
def test_non_strings_are_rejected(value: object) -> None:
    with pytest.raises(EventValidationError) as info:
        parse_partial_date(value)  # type: ignore[arg-type]
    assert info.value.errors[0].path == "occurred"
    assert "string" in info.value.errors[0].message


def test_error_names_the_given_path() -> None:
    with pytest.raises(EventValidationError) as info:
        parse_partial_date("2023-13", "data.horizon")
    assert info.value.errors[0].path == "data.horizon"
    assert "2023-13" in info.value.errors[0].message


def test_interval_end_before_start_message() -> None:
    with pytest.raises(EventValidationError) as info:
        parse_partial_date("2024/2023", "data.occurred")
    assert info.value.errors[0].path == "data.occurred"
    assert "ends before it starts" in info.value.errors[0].message


def test_precision_labels_and_order() -> None:
    assert [p.label for p in Precision] == ["year", "month", "day"]
    assert Precision.YEAR < Precision.MONTH < Precision.DAY


def test_day_of_keeps_the_timestamps_own_offset() -> None:
    seoul = dt.timezone(dt.timedelta(hours=9))
    stamp = dt.datetime(2024, 2, 11, 1, 30, tzinfo=seoul)  # 2024-02-10 in UTC
    assert day_of(stamp) == "2024-02-11"
    assert day_of(stamp.astimezone(dt.UTC)) == "2024-02-10"


def test_sort_key_coarser_precision_first_on_same_day() -> None:
    texts = ["2023-01-01", "2023-01", "2023", "2022-12-31", "2023-01-02", "2023-01-01/2023-03"]
    ordered = sorted(texts, key=lambda t: sort_key(parse_partial_date(t)))
    assert ordered == [
        "2022-12-31",
        "2023",
        "2023-01",
        "2023-01-01",
        "2023-01-01/2023-03",
        "2023-01-02",
    ]
    # a day interval and a day share (earliest, precision): the key ties, others break it
    assert sort_key(parse_partial_date("2023-01-01")) == sort_key(
        parse_partial_date("2023-01-01/2023-03")
    )


def test_qualifier_does_not_change_span_or_order() -> None:
    plain = parse_partial_date("2023-12")
    for q in "?~%":
        qualified = parse_partial_date("2023-12" + q)
        assert (qualified.earliest, qualified.latest, qualified.precision) == (
            plain.earliest,
            plain.latest,
            plain.precision,
        )
        assert sort_key(qualified) == sort_key(plain)
        assert qualified.qualifier == q


# --- properties -----------------------------------------------------------------------

qualifiers = st.sampled_from(["", "?", "~", "%"])
precisions = st.sampled_from(list(Precision))
days = st.dates(min_value=D(1, 1, 1), max_value=D(9999, 12, 31))


def _format(day: dt.date, precision: Precision, qualifier: str) -> str:
    text = f"{day.year:04d}"
    if precision >= Precision.MONTH:
        text += f"-{day.month:02d}"
    if precision == Precision.DAY:
        text += f"-{day.day:02d}"
    return text + qualifier


def _span(day: dt.date, precision: Precision) -> tuple[dt.date, dt.date]:
    if precision == Precision.YEAR:
        return D(day.year, 1, 1), D(day.year, 12, 31)
    if precision == Precision.MONTH:
        last = calendar.monthrange(day.year, day.month)[1]
        return D(day.year, day.month, 1), D(day.year, day.month, last)
    return day, day


@st.composite
def parts(draw: st.DrawFn) -> tuple[str, Precision, str, dt.date, dt.date]:
    day, precision, qualifier = draw(days), draw(precisions), draw(qualifiers)
    return (_format(day, precision, qualifier), precision, qualifier, *_span(day, precision))


@st.composite
def partial_dates(draw: st.DrawFn) -> PartialDate:
    text = draw(parts())[0]
    if draw(st.booleans()):
        start, end = text, draw(parts())[0]
        try:
            return parse_partial_date(f"{start}/{end}")
        except EventValidationError:
            return parse_partial_date(start)
    return parse_partial_date(text)


@given(parts())
def test_single_round_trip(part: tuple[str, Precision, str, dt.date, dt.date]) -> None:
    text, precision, qualifier, earliest, latest = part
    parsed = parse_partial_date(text)
    assert parsed.text == text
    assert parsed.precision == precision
    assert parsed.qualifier == qualifier
    assert (parsed.earliest, parsed.latest) == (earliest, latest)
    assert parsed.earliest <= parsed.latest
    assert _format(parsed.earliest, parsed.precision, parsed.qualifier) == text


@given(parts(), parts())
def test_interval_round_trip(
    start: tuple[str, Precision, str, dt.date, dt.date],
    end: tuple[str, Precision, str, dt.date, dt.date],
) -> None:
    text = f"{start[0]}/{end[0]}"
    if end[4] < start[3]:
        with pytest.raises(EventValidationError):
            parse_partial_date(text)
        return
    parsed = parse_partial_date(text)
    assert parsed.text == text
    assert parsed.precision == start[1]
    uncertain = start[2] in ("?", "%") or end[2] in ("?", "%")
    approximate = start[2] in ("~", "%") or end[2] in ("~", "%")
    expected = {(True, True): "%", (True, False): "?", (False, True): "~"}
    assert parsed.qualifier == expected.get((uncertain, approximate), "")
    assert (parsed.earliest, parsed.latest) == (start[3], end[4])
    assert parsed.earliest <= parsed.latest


@given(st.lists(partial_dates(), min_size=2, max_size=12))
def test_sort_key_is_total_and_follows_earliest_then_precision(dates: list[PartialDate]) -> None:
    ordered = sorted(dates, key=sort_key)
    for a, b in itertools.pairwise(ordered):
        assert (a.earliest, a.precision) <= (b.earliest, b.precision)
        assert sort_key(a) <= sort_key(b)
    for a in dates:
        for b in dates:
            ka, kb = sort_key(a), sort_key(b)
            assert (ka < kb) + (ka == kb) + (ka > kb) == 1
            assert (ka == kb) == ((a.earliest, a.precision) == (b.earliest, b.precision))


@given(st.text(max_size=30))
def test_random_text_parses_or_raises_validation_error_only(text: str) -> None:
    try:
        parsed = parse_partial_date(text, "x")
    except EventValidationError as exc:
        assert [e.path for e in exc.errors] == ["x"]
        return
    assert set(text) <= set("0123456789-/?~%")
    assert parsed.text == text
    assert parsed.earliest <= parsed.latest


@given(st.text(alphabet=st.sampled_from("0123456789-/?~% T:"), max_size=24))
def test_near_miss_text_parses_or_raises_validation_error_only(text: str) -> None:
    try:
        parsed = parse_partial_date(text)
    except EventValidationError:
        return
    assert parsed.earliest <= parsed.latest
    assert parsed.qualifier in ("", "?", "~", "%")


@given(
    st.text(min_size=1, max_size=10).filter(lambda s: any(c not in "0123456789-/?~%" for c in s)),
    parts(),
)
def test_foreign_characters_are_always_invalid(
    junk: str, part: tuple[str, Precision, str, dt.date, dt.date]
) -> None:
    for text in (junk, part[0] + junk, junk + part[0]):
        with pytest.raises(EventValidationError):
            parse_partial_date(text)
