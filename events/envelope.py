"""The CloudEvents envelope (DESIGN 3.1): validate what a publisher sends.

`validate_event` turns a decoded JSON object into a `NewEvent` or raises
EventValidationError listing every problem with its field path.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import msgspec

from events import catalog
from events.codec import SERVER_SET, canonical_bytes, content_digest_of
from events.dates import PartialDate, day_of, parse_partial_date
from events.errors import EventValidationError, FieldError
from events.refs import ENTITY_ID_PATTERN
from events.stored import event_key

MAX_EVENT_BYTES = 64 * 1024
MAX_BATCH_EVENTS = 1000
MAX_BATCH_BYTES = 8 * 1024 * 1024
MAX_EXPECTED_VERSION = 2**53 - 1  # what every JSON reader holds exactly
# Far beyond any real event's data, and far below where encoding it again (a page, a
# replay, an export) could meet the interpreter's recursion limit.
MAX_DATA_DEPTH = 64
MAX_ATTRIBUTE_CHARS = 512  # each of OPTIONAL_STRINGS
ID_PATTERN = r"^[A-Za-z0-9._:/@+-]{1,128}$"
SOURCE_PATTERN = r"^[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]{1,256}$"  # a URI-reference's characters

_ID = re.compile(ID_PATTERN)
_SOURCE = re.compile(SOURCE_PATTERN)
_SUBJECT = re.compile(ENTITY_ID_PATTERN)
_EXTENSION = re.compile(r"^[a-z0-9]{1,20}$")
_RFC3339 = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)

CORE = ("specversion", "id", "source", "type", "subject", "occurred", "time", "data")
OPTIONAL_STRINGS = ("correlationid", "causationid", "traceparent")
KNOWN = (*CORE, "datacontenttype", "expectedversion", *OPTIONAL_STRINGS)


class NewEvent(msgspec.Struct, frozen=True, gc=False):
    """A validated event, not yet stored. `attrs` is what the log will hold.

    Untracked by the garbage collector (it is never part of a cycle), and its typed
    `payload` is decoded again when asked for rather than kept (except an amendment's,
    which the append path reads): a batch holds thousands of events, and every object
    that outlives its decoding makes the collector run, and walk it, again and again."""

    attrs: dict[str, Any]
    occurred: PartialDate
    digest: str
    expected_version: int | None
    content: bytes  # canonical_bytes(attrs): what the stored form is spliced from
    key: str  # the identity (source, id) as the dedupe index names it: event_key
    amendment: catalog.EventCorrected | catalog.EventRetracted | None = None

    @property
    def payload(self) -> Any:
        """The typed `data` (already validated, so this cannot fail)."""
        if self.amendment is not None:
            return self.amendment
        return catalog.decode_data(self.type, self.attrs["data"])

    @property
    def source(self) -> str:
        return str(self.attrs["source"])

    @property
    def id(self) -> str:
        return str(self.attrs["id"])

    @property
    def subject(self) -> str:
        return str(self.attrs["subject"])

    @property
    def type(self) -> str:
        return str(self.attrs["type"])


def parse_timestamp(value: Any, path: str) -> dt.datetime:
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise EventValidationError.one(path, "must be an RFC 3339 timestamp with offset")
    try:
        return dt.datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    except ValueError as exc:
        raise EventValidationError.one(path, f"not a real timestamp: {exc}") from None


_SERVER_SET = frozenset(SERVER_SET)
_NOT_EXTENSIONS = frozenset(KNOWN) | _SERVER_SET
_ID_RULE = "required: 1-128 characters of A-Za-z0-9._:/@+-"
_SOURCE_RULE = "required: a URI-reference of 1-256 characters"
_SUBJECT_RULE = "required: an entity id matching " + ENTITY_ID_PATTERN
_TYPE_RULE = "required: a catalog type or x-<name>.<verb>"
_VERSION_RULE = f"must be an integer from 0 to {MAX_EXPECTED_VERSION}"
_AMENDMENT_TYPES = (catalog.CORRECTED, catalog.RETRACTED)  # a tuple: `type` may be unhashable


def _check_core(raw: dict[str, Any], errors: list[FieldError]) -> None:
    # Every check runs (one 422 names every problem); each costs little when it passes,
    # since every event of a batch goes through here.
    if not _SERVER_SET.isdisjoint(raw):
        errors += [FieldError(name, "is set by the server and must not be sent")
                   for name in SERVER_SET if name in raw]
    if raw.get("specversion") != "1.0":
        errors.append(FieldError("specversion", 'must be "1.0"'))
    ident, source, subject = raw.get("id"), raw.get("source"), raw.get("subject")
    if not (isinstance(ident, str) and _ID.fullmatch(ident)):
        errors.append(FieldError("id", _ID_RULE))
    if not (isinstance(source, str) and _SOURCE.fullmatch(source)):
        errors.append(FieldError("source", _SOURCE_RULE))
    if not (isinstance(subject, str) and _SUBJECT.fullmatch(subject)):
        errors.append(FieldError("subject", _SUBJECT_RULE))
    event_type = raw.get("type")
    if not (isinstance(event_type, str) and catalog.is_known(event_type)):
        errors.append(FieldError("type", _TYPE_RULE))
    if "datacontenttype" in raw and raw["datacontenttype"] != "application/json":
        errors.append(FieldError("datacontenttype", 'must be "application/json"'))
    if "expectedversion" in raw:
        expected = raw["expectedversion"]
        if not (isinstance(expected, int) and not isinstance(expected, bool)
                and 0 <= expected <= MAX_EXPECTED_VERSION):
            errors.append(FieldError("expectedversion", _VERSION_RULE))
    for name in OPTIONAL_STRINGS:
        if name in raw and not (isinstance(raw[name], str)
                                and len(raw[name]) <= MAX_ATTRIBUTE_CHARS):
            errors.append(FieldError(name, f"must be a string of at most {MAX_ATTRIBUTE_CHARS} "
                                     "characters"))


def _check_extensions(raw: dict[str, Any], errors: list[FieldError]) -> None:
    if raw.keys() <= _NOT_EXTENSIONS:  # the usual event: no extensions at all
        return
    for name, value in raw.items():
        if name in _NOT_EXTENSIONS:
            continue
        if not _EXTENSION.fullmatch(name):
            errors.append(FieldError(name, "unknown attribute: extensions are a-z0-9, at most 20"))
        elif not isinstance(value, (str, int, float, bool)) or value is None:
            errors.append(FieldError(name, "extension values must be string, number or boolean"))


_DATES: dict[str, PartialDate] = {}
_DATES_KEPT = 10_000  # ten years of days and then some


def _partial_date(text: Any, path: str) -> PartialDate:
    """parse_partial_date, remembering the dates it parsed (they are immutable):
    a batch repeats the same days and months many times."""
    known = _DATES.get(text) if isinstance(text, str) else None
    if known is not None:
        return known
    parsed = parse_partial_date(text, path)
    if len(_DATES) >= _DATES_KEPT:
        _DATES.clear()
    _DATES[parsed.text] = parsed
    return parsed


def _occurred(raw: dict[str, Any], recorded_day: str | None) -> PartialDate:
    if "time" in raw:
        stamp = parse_timestamp(raw["time"], "time")
    if "occurred" in raw:
        return _partial_date(raw["occurred"], "occurred")
    if "time" in raw:
        return _partial_date(day_of(stamp), "time")
    if recorded_day is not None:
        return _partial_date(recorded_day, "occurred")
    raise EventValidationError.one("occurred", "required when `time` is absent")


def _depth(value: Any) -> int:
    """How many arrays and objects deep `value` nests, counted without recursion (and
    only up to one level beyond the limit)."""
    deepest, stack = 0, [(value, 1)]
    while stack and deepest <= MAX_DATA_DEPTH:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(
            item, list) else None
        if children is not None:
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in children)
    return deepest


_TOO_DEEP = f"nests arrays and objects more than {MAX_DATA_DEPTH} levels deep"


def _content(attrs: dict[str, Any], free_form: bool) -> bytes:
    """canonical_bytes, refusing data nested too deeply to be handled safely later.
    Only `free_form` data can nest at will: a catalog type's schema bounds its depth."""
    try:
        content = canonical_bytes(attrs)
    except RecursionError:
        raise EventValidationError.one("data", _TOO_DEEP) from None
    # Counting brackets rarely passes the limit (they may sit in strings): only then is
    # the nesting measured.
    if (free_form and content.count(b"[") + content.count(b"{") > MAX_DATA_DEPTH
            and _depth(attrs["data"]) > MAX_DATA_DEPTH):
        raise EventValidationError.one("data", _TOO_DEEP)
    return content


def validate_event(raw: Any, today: str | None = None) -> NewEvent:
    """Validate one incoming event. `today` dates corrections that carry no date."""
    if not isinstance(raw, dict):
        raise EventValidationError.one("", "an event must be a JSON object")
    errors: list[FieldError] = []
    _check_core(raw, errors)
    _check_extensions(raw, errors)
    if not isinstance(raw.get("data"), dict):
        errors.append(FieldError("data", "required: a JSON object"))
    event_type = raw.get("type")
    is_amendment = event_type in _AMENDMENT_TYPES
    occurred: PartialDate | None = None
    try:
        occurred = _occurred(raw, today if is_amendment else None)
    except EventValidationError as exc:
        errors += exc.errors
    payload = None
    if not errors and isinstance(event_type, str):
        try:
            payload = catalog.decode_data(event_type, raw["data"])
        except EventValidationError as exc:
            errors += exc.errors
    if isinstance(payload, catalog.EventCorrected) and payload.occurred is not None:
        try:
            parse_partial_date(payload.occurred, "data.occurred")
        except EventValidationError as exc:
            errors += exc.errors
    if errors or occurred is None:
        raise EventValidationError(errors)
    attrs = dict(raw)
    expected = attrs.pop("expectedversion", None)
    dated = "occurred" in raw or "time" in raw
    if dated:
        attrs["occurred"] = occurred.text
    # Without server-set attributes (refused above) the content is the canonical bytes.
    free_form = event_type == catalog.CORRECTED or event_type not in catalog.CATALOG
    content = _content(attrs, free_form)
    # The day of receipt is not content: a re-send on a later day is still a duplicate.
    digest = content_digest_of(content)
    if not dated:
        attrs["occurred"] = occurred.text
        content = _content(attrs, free_form)
    if len(content) > MAX_EVENT_BYTES:
        raise EventValidationError.one("", f"event is larger than {MAX_EVENT_BYTES} bytes")
    amendment = payload if is_amendment else None
    return NewEvent(attrs, occurred, digest, expected, content,
                    event_key(attrs["source"], attrs["id"]), amendment)
