"""Entities, places, money and topics (DESIGN 3.2)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

import msgspec

from events.codes import COUNTRIES, CURRENCIES

ENTITY_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,127}$"


def whole(pattern: str) -> str:
    """`^...$` for msgspec, which uses `re.search`, where `$` also matches before a final
    newline: `(?!\n)` refuses it (and is a no-op in ECMA regexes, so JSON Schema keeps working)."""
    return pattern.removesuffix("$") + r"(?!\n)$"


EntityId = Annotated[str, msgspec.Meta(pattern=whole(ENTITY_ID_PATTERN))]
Slug = Annotated[str, msgspec.Meta(pattern=whole(ENTITY_ID_PATTERN))]
ShortText = Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
Kind = Literal["org", "person", "gov", "other"]

# The codes as Literals: msgspec checks membership in C, where a pattern and a
# `__post_init__` cost a regex search and a Python call per place and amount (~0.4 µs
# of an append's ~14 µs per event). catalog.decode_data words the error as an ISO rule.
if TYPE_CHECKING:
    CountryCode = str
    CurrencyCode = str
else:
    CountryCode = Literal[tuple(sorted(COUNTRIES))]
    CurrencyCode = Literal[tuple(sorted(CURRENCIES))]
CODE_RULES = {"country": "is not an ISO 3166-1 alpha-2 country code (upper case)",
              "currency": "is not an ISO 4217 currency code (upper case)"}


class EntityRef(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, frozen=True):
    id: EntityId
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=300)] | None = None
    kind: Kind | None = None

    @property
    def label(self) -> str:
        return self.name or self.id


class Place(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, frozen=True):
    country: CountryCode
    region: ShortText | None = None
    city: ShortText | None = None
    site: ShortText | None = None

    @property
    def label(self) -> str:
        parts = [self.site, self.city, self.region, self.country]
        return ", ".join(p for p in parts if p)


class Money(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    amount: Annotated[float, msgspec.Meta(ge=0)]
    currency: CurrencyCode
