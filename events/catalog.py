"""The v1 catalog (DESIGN 3.3): one msgspec Struct per event type's `data`.

Schemas only ever gain optional fields; bumping a type's version means adding
an upcaster in `events.upcast`, never changing what version 1 meant.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec

from events.dates import parse_partial_date
from events.errors import EventValidationError, FieldError, FieldValueError
from events.refs import CODE_RULES, EntityRef, Money, Place, ShortText, Slug, whole

EventId = Annotated[str, msgspec.Meta(pattern=whole(r"^[A-Za-z0-9._:/@+-]{1,128}$"))]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=4000)]
Url = Annotated[str, msgspec.Meta(pattern=whole(r"^https?://\S+$"), max_length=2048)]
Parties = Annotated[list[EntityRef], msgspec.Meta(min_length=2, max_length=50)]
Count = Annotated[int, msgspec.Meta(ge=1)]

VENDOR_TYPE = re.compile(r"^x-[a-z0-9][a-z0-9-]{0,30}\.[a-z0-9][a-z0-9_-]{0,30}$")


class Common(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True,
             gc=False):
    """Fields every catalog type may carry.

    Decoded data never forms a cycle, so no payload struct is tracked by the garbage
    collector (`gc=False`, inherited): a batch of thousands would make every
    collection walk them all."""

    headline: ShortText | None = None
    summary: Text | None = None
    topics: Annotated[list[Slug], msgspec.Meta(max_length=20)] = []
    place: Place | None = None
    cameo: Annotated[str, msgspec.Meta(pattern=whole(r"^[0-9]{2,4}$"))] | None = None
    sources: Annotated[list[Url], msgspec.Meta(max_length=20)] = []

    def entities(self) -> list[tuple[EntityRef, str]]:
        """Every entity the data names, with its role."""
        return []


class MouSigned(Common, kw_only=True):
    parties: Parties
    title: ShortText | None = None

    def entities(self) -> list[tuple[EntityRef, str]]:
        return [(p, "party") for p in self.parties]


class ContractConcluded(Common, kw_only=True):
    parties: Parties
    title: ShortText | None = None
    value: Money | None = None
    follows: EventId | None = None

    def entities(self) -> list[tuple[EntityRef, str]]:
        return [(p, "party") for p in self.parties]


class CollaborationLaunched(Common, kw_only=True):
    parties: Parties
    title: ShortText
    goals: Annotated[list[ShortText], msgspec.Meta(max_length=50)] = []

    def entities(self) -> list[tuple[EntityRef, str]]:
        return [(p, "party") for p in self.parties]


class SiteVisited(Common, kw_only=True):
    visitor: EntityRef
    place: Place  # required here, optional elsewhere
    host: EntityRef | None = None
    purpose: ShortText | None = None

    def entities(self) -> list[tuple[EntityRef, str]]:
        found = [(self.visitor, "visitor")]
        return [*found, (self.host, "host")] if self.host else found


class MeetingHeld(Common, kw_only=True):
    parties: Parties
    purpose: ShortText | None = None

    def entities(self) -> list[tuple[EntityRef, str]]:
        return [(p, "party") for p in self.parties]


class InvestmentAnnounced(Common, kw_only=True):
    investor: EntityRef
    amount: Money | None = None
    area: ShortText | None = None
    horizon: str | None = None

    def __post_init__(self) -> None:
        if self.horizon is not None:
            try:
                parse_partial_date(self.horizon, "horizon")
            except EventValidationError as exc:
                raise FieldValueError("horizon", exc.errors[0].message) from None

    def entities(self) -> list[tuple[EntityRef, str]]:
        return [(self.investor, "investor")]


class AcquisitionAnnounced(Common, kw_only=True):
    acquirer: EntityRef
    target: EntityRef
    value: Money | None = None
    status: ShortText | None = None

    def entities(self) -> list[tuple[EntityRef, str]]:
        return [(self.acquirer, "acquirer"), (self.target, "target")]


class AwardReceived(Common, kw_only=True):
    recipient: EntityRef
    award: ShortText
    venue: ShortText | None = None
    rank: Count | None = None
    of: Count | None = None

    def entities(self) -> list[tuple[EntityRef, str]]:
        return [(self.recipient, "recipient")]


class SolutionDeployed(Common, kw_only=True):
    provider: EntityRef
    client: EntityRef
    application: ShortText

    def entities(self) -> list[tuple[EntityRef, str]]:
        return [(self.provider, "provider"), (self.client, "client")]


class EventCorrected(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True,
                     gc=False):
    target: EventId
    reason: Text
    occurred: str | None = None
    data: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.occurred is None and self.data is None:
            raise ValueError("a correction must carry `occurred`, `data` or both")


class EventRetracted(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, gc=False):
    target: EventId
    reason: Text


CORRECTED = "event.corrected"
RETRACTED = "event.retracted"

CATALOG: dict[str, type[Common]] = {
    "mou.signed": MouSigned,
    "contract.concluded": ContractConcluded,
    "collaboration.launched": CollaborationLaunched,
    "site.visited": SiteVisited,
    "meeting.held": MeetingHeld,
    "investment.announced": InvestmentAnnounced,
    "acquisition.announced": AcquisitionAnnounced,
    "award.received": AwardReceived,
    "solution.deployed": SolutionDeployed,
}

SCHEMA_VERSIONS: dict[str, int] = {name: 1 for name in (*CATALOG, CORRECTED, RETRACTED)}

VENDOR_SCHEMA_VERSION = 1


def is_vendor(event_type: str) -> bool:
    return bool(VENDOR_TYPE.fullmatch(event_type))


def is_known(event_type: str) -> bool:
    return event_type in SCHEMA_VERSIONS or is_vendor(event_type)


def schema_version(event_type: str) -> int:
    return SCHEMA_VERSIONS.get(event_type, VENDOR_SCHEMA_VERSION)


class VendorData(Common, kw_only=True):
    """What a vendor type's free-form data offers to timelines: nothing is required.

    `parties`, as in the catalog's types, names entities the event involves; the CSV
    importer's `parties` column fills it for a vendor type."""

    parties: Annotated[list[EntityRef], msgspec.Meta(max_length=50)] = []

    def entities(self) -> list[tuple[EntityRef, str]]:
        return [(p, "party") for p in self.parties]


_NOT_ONE_OF = "Invalid enum value "  # msgspec's wording for a value outside a Literal
_NAMED_FIELD = re.compile(r"^Object (?:missing required|contains unknown) field `(.+)`$")


def _field_path(prefix: str, exc: msgspec.ValidationError) -> FieldError:
    """msgspec reports the object holding a missing/unknown field: name the field itself."""
    message = str(exc)
    path = prefix
    if " - at `$" in message:
        message, _, where = message.rpartition(" - at `$")
        path = prefix + where.rstrip("`")
    named = _NAMED_FIELD.match(message)
    rule = CODE_RULES.get(path.rpartition(".")[2])
    if rule and message.startswith(_NOT_ONE_OF):
        shown = message.removeprefix(_NOT_ONE_OF)  # quoted; a code is 2 or 3 letters
        message = f"{shown if len(shown) <= 12 else 'the value'} {rule}"
    elif named:
        path += "." + named.group(1)
    elif isinstance(exc.__cause__, FieldValueError):
        path += "." + exc.__cause__.field
    return FieldError(path, message)


def decode_data(event_type: str, data: Any, path: str = "data") -> Any:
    """Validate `data` against `event_type`'s schema and return the typed value."""
    schema: type[Any]
    if event_type == CORRECTED:
        schema = EventCorrected
    elif event_type == RETRACTED:
        schema = EventRetracted
    elif event_type in CATALOG:
        schema = CATALOG[event_type]
    else:
        return view_vendor(data)
    try:
        return msgspec.convert(data, type=schema, strict=True)
    except msgspec.ValidationError as exc:
        raise EventValidationError([_field_path(path, exc)]) from None


def view_vendor(data: Any) -> VendorData:
    """The common fields of vendor data that are well-formed, each on its own: one bad
    field (a topic in capitals) must not cost the event its place or headline. Vendor
    data is never rejected for them (DESIGN 3.3: only size-checked)."""
    if not isinstance(data, dict):
        return VendorData()
    known = {k: data[k] for k in VendorData.__struct_fields__ if k in data}
    try:
        return msgspec.convert(known, type=VendorData, strict=True)
    except msgspec.ValidationError:
        pass
    kept: dict[str, Any] = {}
    for name, value in known.items():
        try:
            msgspec.convert({name: value}, type=VendorData, strict=True)
        except msgspec.ValidationError:
            continue
        kept[name] = value
    return msgspec.convert(kept, type=VendorData, strict=True)
