"""The AsyncAPI document: valid AsyncAPI 3.0.0, with a schema for every catalog type
that accepts the events validation accepts."""

from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from events import catalog
from events.envelope import validate_event
from events.errors import EventValidationError
from services.asyncapi import document

SPEC = Path(__file__).parent.parent / "fixtures" / "asyncapi" / "asyncapi-3.0.0.schema.json.gz"
STORY = Path(__file__).parent.parent.parent / "services" / "demo_story.jsonl"


def spec_errors(doc: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(json.loads(gzip.decompress(SPEC.read_bytes())))
    return [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(doc)]


def payload_validator(doc: dict[str, Any], message: str) -> jsonschema.Draft7Validator:
    """A validator for one message's payload, its $refs resolved inside the document."""
    payload = doc["components"]["messages"][message]["payload"]
    return jsonschema.Draft7Validator({**payload, "components": doc["components"]})


def test_the_document_is_valid_asyncapi_3() -> None:
    doc = document(8)
    assert doc["asyncapi"] == "3.0.0"
    assert {"ingest", "partitionLog", "live"} <= set(doc["channels"])
    assert doc["channels"]["ingest"]["address"] == "timeline:ingest"
    assert doc["operations"]["receiveIngest"]["action"] == "receive"
    assert spec_errors(doc) == []


def test_the_spec_check_catches_a_broken_document() -> None:
    broken = copy.deepcopy(document())
    broken["operations"]["receiveIngest"]["action"] = "consume"
    del broken["info"]["version"]
    assert len(spec_errors(broken)) >= 2


def test_every_catalog_type_has_a_schema_and_a_message() -> None:
    doc = document()
    schemas, messages = doc["components"]["schemas"], doc["components"]["messages"]
    for event_type, struct in catalog.CATALOG.items():
        assert struct.__name__ in schemas, event_type
        assert event_type in messages, event_type
        assert event_type in doc["channels"]["ingest"]["messages"]
    for struct in (catalog.EventCorrected, catalog.EventRetracted):
        assert struct.__name__ in schemas
    mou = schemas["MouSigned"]
    assert set(mou["required"]) == {"parties"}
    assert mou["properties"]["parties"]["minItems"] == 2
    assert mou["additionalProperties"] is False


@pytest.mark.parametrize("line", STORY.read_text().splitlines())
def test_the_demo_events_match_their_message_schemas(line: str) -> None:
    event = json.loads(line)
    doc = document()
    assert list(payload_validator(doc, event["type"]).iter_errors(event)) == []


def test_the_schemas_refuse_what_validation_refuses() -> None:
    event = json.loads(STORY.read_text().splitlines()[4])
    assert event["type"] == "mou.signed"
    doc = document()
    validator = payload_validator(doc, "mou.signed")
    unknown = copy.deepcopy(event)
    unknown["data"]["signed_by"] = "someone"
    one_party = copy.deepcopy(event)
    one_party["data"]["parties"] = one_party["data"]["parties"][:1]
    bad_date = {**event, "occurred": "December 2023"}
    wrong_type = {**event, "type": "contract.concluded"}
    for bad in (unknown, one_party, bad_date, wrong_type):
        assert list(validator.iter_errors(bad)), bad


def vendor_event(**extra: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "id": "v-1", "source": "urn:test", "type": "x-gdelt.noted",
            "subject": "org-1", "occurred": "2024-03", "data": {}, **extra}


@pytest.mark.parametrize("data", [
    {"anything": 3},  # free-form fields
    {"goldstein": -2.5, "headline": "talks"},
    {"place": {"country": "XX"}},  # a common field malformed: kept, not shown
])
def test_the_vendor_message_takes_the_data_validation_takes(data: dict[str, Any]) -> None:
    event = vendor_event(data=data)
    validate_event(event)
    assert list(payload_validator(document(), "vendor").iter_errors(event)) == []


@pytest.mark.parametrize("attributes", [
    {"source": "has a space"}, {"correlationid": "c" * 513}, {"expectedversion": 2**53},
    {"recordedtime": "2024-01-01T00:00:00Z"},  # set by the server only
])
def test_the_envelope_refuses_what_validation_refuses(attributes: dict[str, Any]) -> None:
    event = vendor_event(**attributes)
    with pytest.raises(EventValidationError):
        validate_event(event)
    assert list(payload_validator(document(), "vendor").iter_errors(event))


def test_a_stored_event_matches_the_stored_schema() -> None:
    event = {**json.loads(STORY.read_text().splitlines()[4]), "recordedtime":
             "2024-01-01T00:00:00Z", "recordedby": "anonymous", "partition": 3,
             "sequence": 1, "schemaversion": 1}
    doc = document()
    validator = jsonschema.Draft7Validator({"$ref": "#/components/schemas/StoredEvent",
                                            "components": doc["components"]})
    assert list(validator.iter_errors(event)) == []
