"""A stored event as read back from the log: the envelope plus server-set fields."""

from __future__ import annotations

from typing import Any

import msgspec


class StoredEvent(msgspec.Struct, frozen=True):
    """The fields the projections read; extensions stay in the raw JSON."""

    id: str
    source: str
    type: str
    subject: str
    occurred: str
    data: dict[str, Any]
    recordedtime: str
    recordedby: str
    partition: int
    sequence: int
    schemaversion: int = 1

    @property
    def key(self) -> str:
        return event_key(self.source, self.id)

    @property
    def position(self) -> str:
        return position(self.partition, self.sequence)


def event_key(source: str, ident: str) -> str:
    """One string naming (source, id): the unit separator occurs in neither."""
    return f"{source}\x1f{ident}"


def position(partition: int, sequence: int) -> str:
    return f"{partition}-{sequence}"


def parse_position(text: str) -> tuple[int, int]:
    """(partition, sequence) of a position the service wrote (a client's is checked
    first: services.queries.parse_token)."""
    part, _, seq = text.partition("-")
    return int(part), int(seq)


stored_decoder = msgspec.json.Decoder(StoredEvent)
