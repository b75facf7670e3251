"""Canonical bytes, content digests and the per-partition hash chain (DESIGN 2)."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

GENESIS = bytes(32)

# What reading JSON from outside can raise: msgspec raises RecursionError, not DecodeError,
# for arrays or objects nested beyond the interpreter's recursion limit.
UNREADABLE = (msgspec.DecodeError, RecursionError)

_encoder = msgspec.json.Encoder(order="sorted")
_decoder = msgspec.json.Decoder()

SERVER_SET = ("recordedtime", "recordedby", "partition", "sequence", "hash", "schemaversion")
_SERVER_SET = frozenset(SERVER_SET)


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
    if not _SERVER_SET.isdisjoint(event):
        event = {k: v for k, v in event.items() if k not in _SERVER_SET}
    return content_digest_of(_encoder.encode(event))


def content_digest_of(content: bytes) -> str:
    """`content_digest` of an event already encoded canonically, without server-set
    attributes (saves a second encoding on the append path)."""
    return hashlib.sha256(content).hexdigest()[:32]


# Attributes an event may carry that sort before "partition" or after "sequence": with
# only these, the server-set attributes sit together just before "source" in the
# canonical bytes (an extension could sort among them: those events are encoded whole).
_SPLICEABLE = frozenset(("causationid", "correlationid", "data", "datacontenttype", "id",
                         "occurred", "source", "specversion", "subject", "time",
                         "traceparent", "type"))
_SOURCE_KEY = b',"source":'


class Stamp:
    """The server-set attributes of one batch of one partition, added to each event's
    canonical bytes (`canonical_bytes` of the stored event, exactly).

    Encoding every stored event again would sort and encode its whole body; splicing
    the server's few fields into the publisher's canonical bytes, already made during
    validation, costs a copy."""

    def __init__(self, recordedtime: str, recordedby: str, partition: int) -> None:
        self.fields: dict[str, Any] = {"recordedtime": recordedtime,
                                       "recordedby": recordedby, "partition": partition}
        self._prefix = b',"partition":%d,"recordedby":%s,"recordedtime":%s,"schemaversion":' % (
            partition, _encoder.encode(recordedby), _encoder.encode(recordedtime))

    def stored(self, attrs: dict[str, Any], content: bytes, sequence: int,
               schemaversion: int) -> bytes:
        """canonical_bytes({**attrs, <server fields>}), given content = canonical_bytes(attrs)
        of a publisher's event (no server-set attribute)."""
        if attrs.keys() <= _SPLICEABLE:
            # Everything from the top-level "source" on is string values (source, subject,
            # specversion, time, traceparent, type), which cannot hold an unescaped quote:
            # the last `,"source":` is the top-level key.
            cut = content.rfind(_SOURCE_KEY)
            if cut > 0:
                return b"%s%s%d,\"sequence\":%d%s" % (
                    content[:cut], self._prefix, schemaversion, sequence, content[cut:])
        return canonical_bytes({**attrs, **self.fields, "sequence": sequence,
                                "schemaversion": schemaversion})
