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
from events.codec import SERVER_SET, canonical_bytes, content_digest
from events.dates import PartialDate, day_of, parse_partial_date
from events.errors import EventValidationError, FieldError
from events.refs import ENTITY_ID_PATTERN

MAX_EVENT_BYTES = 64 * 1024
MAX_BATCH_EVENTS = 1000
MAX_BATCH_BYTES = 8 * 1024 * 1024
MAX_EXPECTED_VERSION = 2**53 - 1  # what every JSON reader holds exactly

_ID = re.compile(r"^[A-Za-z0-9._:/@+-]{1,128}$")
_SOURCE = re.compile(r"^[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]{1,256}$")
_SUBJECT = re.compile(ENTITY_ID_PATTERN)
_EXTENSION = re.compile(r"^[a-z0-9]{1,20}$")
_RFC3339 = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)

CORE = ("specversion", "id", "source", "type", "subject", "occurred", "time", "data")
OPTIONAL_STRINGS = ("correlationid", "causationid", "traceparent")
KNOWN = (*CORE, "datacontenttype", "expectedversion", *OPTIONAL_STRINGS)


class NewEvent(msgspec.Struct, frozen=True):
    """A validated event, not yet stored. `attrs` is what the log will hold."""

    attrs: dict[str, Any]
    occurred: PartialDate
    payload: Any
    digest: str
    expected_version: int | None

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


def _check(errors: list[FieldError], path: str, ok: bool, message: str) -> None:
    if not ok:
        errors.append(FieldError(path, message))


def _check_core(raw: dict[str, Any], errors: list[FieldError]) -> None:
    for name in SERVER_SET:
        _check(errors, name, name not in raw, "is set by the server and must not be sent")
    _check(errors, "specversion", raw.get("specversion") == "1.0", 'must be "1.0"')
    ident, source, subject = raw.get("id"), raw.get("source"), raw.get("subject")
    _check(
        errors, "id", isinstance(ident, str) and bool(_ID.fullmatch(ident)),
        "required: 1-128 characters of A-Za-z0-9._:/@+-",
    )
    _check(
        errors, "source", isinstance(source, str) and bool(_SOURCE.fullmatch(source)),
        "required: a URI-reference of 1-256 characters",
    )
    _check(
        errors, "subject", isinstance(subject, str) and bool(_SUBJECT.fullmatch(subject)),
        "required: an entity id matching " + ENTITY_ID_PATTERN,
    )
    event_type = raw.get("type")
    _check(
        errors, "type", isinstance(event_type, str) and catalog.is_known(event_type),
        "required: a catalog type or x-<name>.<verb>",
    )
    if "datacontenttype" in raw:
        _check(
            errors, "datacontenttype", raw["datacontenttype"] == "application/json",
            'must be "application/json"',
        )
    expected = raw.get("expectedversion")
    if "expectedversion" in raw:
        _check(
            errors, "expectedversion",
            isinstance(expected, int) and not isinstance(expected, bool)
            and 0 <= expected <= MAX_EXPECTED_VERSION,
            f"must be an integer from 0 to {MAX_EXPECTED_VERSION}",
        )
    for name in OPTIONAL_STRINGS:
        if name in raw:
            _check(errors, name, isinstance(raw[name], str) and len(raw[name]) <= 512,
                   "must be a string of at most 512 characters")


def _check_extensions(raw: dict[str, Any], errors: list[FieldError]) -> None:
    for name, value in raw.items():
        if name in KNOWN or name in SERVER_SET:
            continue
        if not _EXTENSION.fullmatch(name):
            errors.append(FieldError(name, "unknown attribute: extensions are a-z0-9, at most 20"))
        elif not isinstance(value, (str, int, float, bool)) or value is None:
            errors.append(FieldError(name, "extension values must be string, number or boolean"))


def _occurred(raw: dict[str, Any], recorded_day: str | None) -> PartialDate:
    if "time" in raw:
        stamp = parse_timestamp(raw["time"], "time")
    if "occurred" in raw:
        return parse_partial_date(raw["occurred"], "occurred")
    if "time" in raw:
        return parse_partial_date(day_of(stamp), "time")
    if recorded_day is not None:
        return parse_partial_date(recorded_day, "occurred")
    raise EventValidationError.one("occurred", "required when `time` is absent")


def _collect(errors: list[FieldError], step: Any) -> Any:
    try:
        return step()
    except EventValidationError as exc:
        errors.extend(exc.errors)
        return None


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
    is_amendment = event_type in (catalog.CORRECTED, catalog.RETRACTED)
    occurred = _collect(errors, lambda: _occurred(raw, today if is_amendment else None))
    payload = None
    if not errors and isinstance(event_type, str):
        payload = _collect(errors, lambda: catalog.decode_data(event_type, raw["data"]))
    if isinstance(payload, catalog.EventCorrected) and payload.occurred is not None:
        _collect(errors, lambda: parse_partial_date(payload.occurred, "data.occurred"))
    if errors:
        raise EventValidationError(errors)
    attrs = {k: v for k, v in raw.items() if k != "expectedversion"}
    if "occurred" in raw or "time" in raw:
        attrs["occurred"] = occurred.text
    # The day of receipt is not content: a re-send on a later day is still a duplicate.
    digest = content_digest(attrs)
    attrs["occurred"] = occurred.text
    if len(canonical_bytes(attrs)) > MAX_EVENT_BYTES:
        raise EventValidationError.one("", f"event is larger than {MAX_EVENT_BYTES} bytes")
    return NewEvent(attrs, occurred, payload, digest, raw.get("expectedversion"))
