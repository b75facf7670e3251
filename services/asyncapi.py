"""The AsyncAPI 3 document of the service's Redis streams.

The channels are the ingest stream (publishers write), each partition's log
(the service appends; auditors and projections read) and the live feed (the
projection publishes applied entries). Message schemas come from the msgspec
catalog itself (FastStream's generator cannot read msgspec Structs), so the
document never drifts from what validation accepts. The envelope rules live in
code rather than in a Struct (events.envelope), so its schema is written here
from the same constants.
"""

from __future__ import annotations

from typing import Any

import msgspec

from events import catalog
from events.codec import SERVER_SET
from events.envelope import (
    ID_PATTERN,
    MAX_ATTRIBUTE_CHARS,
    MAX_EVENT_BYTES,
    MAX_EXPECTED_VERSION,
    OPTIONAL_STRINGS,
    SOURCE_PATTERN,
)
from events.refs import ENTITY_ID_PATTERN
from projections.entry import Entry
from projections.live import LIVE, MAXLEN

SCHEMAS = "#/components/schemas/"
MESSAGES = "#/components/messages/"
PARTIAL_DATE = (r"^[0-9]{4}(-[0-9]{2}(-[0-9]{2})?)?[?~%]?"
                r"(/[0-9]{4}(-[0-9]{2}(-[0-9]{2})?)?[?~%]?)?$")
VENDOR = "vendor"
_AMENDMENTS = {catalog.CORRECTED: catalog.EventCorrected, catalog.RETRACTED: catalog.EventRetracted}


def data_types() -> dict[str, type[Any]]:
    """Event type → the Struct its `data` must match (vendor types: VendorData)."""
    return {**catalog.CATALOG, **_AMENDMENTS, VENDOR: catalog.VendorData}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": SCHEMAS + name}


def _envelope(stored: bool = False) -> dict[str, Any]:
    """The envelope as publishers send it; `stored`: with the names the server sets,
    which a publisher may not send."""
    known = ["specversion", "id", "source", "type", "subject", "occurred", "time",
             "datacontenttype", "data", "expectedversion", *OPTIONAL_STRINGS]
    strings = {name: {"type": "string", "maxLength": MAX_ATTRIBUTE_CHARS}
               for name in OPTIONAL_STRINGS}
    names: dict[str, Any] = {"anyOf": [{"enum": known}, {"pattern": "^[a-z0-9]{1,20}$"}]}
    if not stored:
        names["not"] = {"enum": list(SERVER_SET)}
    return {
        "type": "object",
        "description": "A CloudEvents 1.0 event in structured JSON mode (DESIGN 3.1). "
                       f"At most {MAX_EVENT_BYTES} bytes encoded. Other attributes are "
                       "extensions: lowercase a-z0-9 names of at most 20 characters with "
                       "string, number or boolean values.",
        "required": ["specversion", "id", "source", "type", "subject", "data"],
        "properties": {
            "specversion": {"const": "1.0"},
            "id": {"type": "string", "pattern": ID_PATTERN},
            "source": {"type": "string", "pattern": SOURCE_PATTERN,
                       "description": "URI-reference; (source, id) names the event forever"},
            "type": {"type": "string"},
            "subject": {"type": "string", "pattern": ENTITY_ID_PATTERN,
                        "description": "The primary entity; decides the partition"},
            "occurred": _ref("PartialDate"),
            "time": {"type": "string", "format": "date-time"},
            "datacontenttype": {"const": "application/json"},
            "data": {"type": "object"},
            "expectedversion": {"type": "integer", "minimum": 0,
                                "maximum": MAX_EXPECTED_VERSION},
            **strings,
        },
        "propertyNames": names,
        "additionalProperties": {"type": ["string", "number", "boolean"]},
    }


def _stored() -> dict[str, Any]:
    return {
        "description": "An event as the log stores it: the envelope plus the attributes "
                       "the server sets. Its canonical JSON (sorted keys, no whitespace) is "
                       "what the partition's hash chain covers.",
        "allOf": [_envelope(stored=True), {
            "type": "object",
            "required": ["recordedtime", "recordedby", "partition", "sequence",
                         "schemaversion"],
            "properties": {
                "recordedtime": {"type": "string", "format": "date-time"},
                "recordedby": {"type": "string"},
                "partition": {"type": "integer", "minimum": 0},
                "sequence": {"type": "integer", "minimum": 1},
                "schemaversion": {"type": "integer", "minimum": 1},
            },
        }],
    }


def _typed(event_type: str, struct: type[Any]) -> dict[str, Any]:
    if event_type == VENDOR:  # validation takes any object: timelines read what fits
        kind: dict[str, Any] = {"type": "string", "pattern": catalog.VENDOR_TYPE.pattern}
        data: dict[str, Any] = {"type": "object", "description": (
            "Any JSON object. The fields of VendorData that are well-formed, each on its own, "
            "are what timelines show; the rest is kept as sent."), "x-timeline-reads": _ref(
            struct.__name__)}
    else:
        kind, data = {"const": event_type}, _ref(struct.__name__)
    return {"allOf": [_ref("CloudEvent"), {
        "type": "object", "properties": {"type": kind, "data": data}}]}


def _message(event_type: str, struct: type[Any]) -> dict[str, Any]:
    doc = (struct.__doc__ or "").strip().splitlines()
    title = "Vendor event (x-<name>.<verb>)" if event_type == VENDOR else event_type
    return {
        "name": event_type,
        "title": title,
        "summary": doc[0] if doc and event_type == VENDOR else f"A {event_type} event",
        "contentType": "application/json",
        "payload": _typed(event_type, struct),
    }


def schemas() -> dict[str, Any]:
    """Every component schema: the catalog's `data` Structs, the envelope, entries."""
    types = [*dict.fromkeys(data_types().values()), Entry]
    _, components = msgspec.json.schema_components(types, ref_template=SCHEMAS + "{name}")
    return {
        **components,
        "PartialDate": {"type": "string", "pattern": PARTIAL_DATE,
                        "description": "EDTF level 0/1 subset: YYYY, YYYY-MM, YYYY-MM-DD, "
                                       "each optionally followed by ? ~ or %, or an "
                                       "interval A/B of two of those"},
        "CloudEvent": _envelope(),
        "StoredEvent": _stored(),
        "LiveEntry": {"type": "object", "required": ["entry", "timelines"], "properties": {
            "entry": _ref("Entry"),
            "timelines": {"type": "array", "items": {"type": "string"},
                          "description": "Every timeline the entry is on, as kind:key "
                                         "(all, entity:ID, pair:A:B, place:CC[:city], "
                                         "topic:SLUG)"},
            "left": {"type": "array", "items": {"type": "string"},
                     "description": "The timelines a correction has just taken the entry "
                                    "off (empty or absent: none)"}}},
    }


def document(partitions: int | None = None) -> dict[str, Any]:
    """The whole AsyncAPI 3.0.0 document."""
    types = data_types()
    messages = {name: _message(name, struct) for name, struct in types.items()}
    messages["storedEvent"] = {
        "name": "storedEvent", "title": "Stored event", "contentType": "application/json",
        "summary": "One log entry",
        "description": "Stream entry id `<sequence>-0`; fields `event` (the JSON text of this "
                       "payload) and `hash` (lowercase hex sha256(previous hash || event))."
                       " Never trimmed or edited.",
        "payload": _ref("StoredEvent")}
    messages["liveEntry"] = {
        "name": "liveEntry", "title": "Applied timeline entry", "contentType": "application/json",
        "summary": "An entry as the projection applied it",
        "description": "Stream fields `entry`, `timelines` and, when not empty, `left`, "
                       "each a JSON text. At least once: a redelivered batch publishes its "
                       "entries again (without `left`).",
        "payload": _ref("LiveEntry")}
    ingest = {name: {"$ref": MESSAGES + name} for name in types}
    partition_note = (f"0 to {partitions - 1}" if partitions else "0 to N-1 (N fixed when "
                      "the log is created, default 8)")
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Timeline service streams",
            "version": "1.0.0",
            "description": "Redis streams of the event-sourced timeline service: publish "
                           "events to the ingest stream, read the hash-chained partition "
                           "logs, follow applied entries on the live stream.",
        },
        "defaultContentType": "application/json",
        "servers": {"redis": {
            "host": "{host}:{port}", "protocol": "redis",
            "description": "The service's Redis-compatible server (TIMELINE_REDIS_URL, or the "
                           "embedded one whose URL is in TIMELINE_DATA_DIR/server.url)",
            "variables": {"host": {"default": "127.0.0.1"}, "port": {"default": "6379"}},
        }},
        "channels": {
            "ingest": {
                "address": "timeline:ingest", "title": "Ingest stream",
                "description": "Publish with `XADD timeline:ingest * event <CloudEvents JSON>` "
                               "(or a FastStream publisher). Events are validated and appended "
                               "exactly as POST /v1/events does; rejected entries move to "
                               "`timeline:ingest:rejected` with their errors.",
                "messages": ingest,
            },
            "partitionLog": {
                "address": "timeline:{tag}:log", "title": "Partition log",
                "description": "The source of truth: one hash-chained, never-trimmed stream "
                               "per partition; partition = crc32(subject) mod N.",
                "parameters": {"tag": {
                    "description": "The partition's Redis Cluster hash tag `{pN}`, N from "
                                   + partition_note,
                    "examples": ["{p0}", "{p7}"]}},
                "messages": {"storedEvent": {"$ref": MESSAGES + "storedEvent"}},
            },
            "live": {
                "address": LIVE, "title": "Live entries",
                "description": f"Capped at about {MAXLEN} entries (MAXLEN ~). Served over "
                               "HTTP as Server-Sent Events at GET /v1/live.",
                "messages": {"liveEntry": {"$ref": MESSAGES + "liveEntry"}},
            },
        },
        "operations": {
            "receiveIngest": {
                "action": "receive", "channel": {"$ref": "#/channels/ingest"},
                "summary": "Validate and append events written to the ingest stream",
                "messages": [{"$ref": f"#/channels/ingest/messages/{n}"} for n in types],
            },
            "appendToLog": {
                "action": "send", "channel": {"$ref": "#/channels/partitionLog"},
                "summary": "Append a validated, sequenced, hash-chained event",
                "messages": [{"$ref": "#/channels/partitionLog/messages/storedEvent"}],
            },
            "publishLive": {
                "action": "send", "channel": {"$ref": "#/channels/live"},
                "summary": "Publish each entry the projection applied",
                "messages": [{"$ref": "#/channels/live/messages/liveEntry"}],
            },
        },
        "components": {"schemas": schemas(), "messages": messages},
    }
