"""Canonical bytes, content digests and the per-partition hash chain (DESIGN 2)."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

GENESIS = bytes(32)

_encoder = msgspec.json.Encoder(order="sorted")
_decoder = msgspec.json.Decoder()

SERVER_SET = ("recordedtime", "recordedby", "partition", "sequence", "hash", "schemaversion")


def canonical_bytes(event: dict[str, Any]) -> bytes:
    """JSON with sorted keys and no insignificant whitespace, without `hash`."""
    if "hash" in event:
        event = {k: v for k, v in event.items() if k != "hash"}
    return _encoder.encode(event)


def decode(raw: bytes | str) -> Any:
    return _decoder.decode(raw)


def chain_hash(prev: bytes, canonical: bytes) -> bytes:
    """hash_n = sha256(hash_{n-1} || canonical_bytes_n)."""
    return hashlib.sha256(prev + canonical).digest()


def content_digest(event: dict[str, Any]) -> str:
    """Digest of what the publisher sent: server-set attributes excluded.

    Two sends of one (source, id) are duplicates exactly when these match.
    """
    content = {k: v for k, v in event.items() if k not in SERVER_SET}
    return hashlib.sha256(_encoder.encode(content)).hexdigest()[:32]
