"""Canonical bytes, content digests and the hash chain (DESIGN 2)."""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from events.codec import (
    GENESIS,
    SERVER_SET,
    Stamp,
    canonical_bytes,
    chain_hash,
    content_digest,
    decode,
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=15,
)
json_objects = st.dictionaries(st.text(max_size=10), json_values, max_size=6)


def _reordered(value: Any, rng: random.Random) -> Any:
    """The same JSON value with every object's keys in a shuffled insertion order."""
    if isinstance(value, dict):
        keys = list(value)
        rng.shuffle(keys)
        return {k: _reordered(value[k], rng) for k in keys}
    if isinstance(value, list):
        return [_reordered(v, rng) for v in value]
    return value


def _keys_sorted_everywhere(value: Any) -> bool:
    if isinstance(value, dict):
        return list(value) == sorted(value) and all(map(_keys_sorted_everywhere, value.values()))
    if isinstance(value, list):
        return all(map(_keys_sorted_everywhere, value))
    return True


def test_canonical_bytes_exact_form() -> None:
    event = {"b": 1, "a": [1, 2.5, "x"], "c": {"z": True, "y": None}, "é": "ü"}
    assert (
        canonical_bytes(event) == '{"a":[1,2.5,"x"],"b":1,"c":{"y":null,"z":true},"é":"ü"}'.encode()
    )


def test_canonical_bytes_drop_only_the_hash() -> None:
    event = {
        "id": "e1",
        "hash": "ab" * 32,
        "partition": 3,
        "sequence": 7,
        "recordedtime": "2024-02-11T00:00:00.000000Z",
        "recordedby": "anonymous",
    }
    encoded = canonical_bytes(event)
    decoded = decode(encoded)
    assert "hash" not in decoded
    assert decoded == {k: v for k, v in event.items() if k != "hash"}
    assert event["hash"] == "ab" * 32  # the caller's dict is not modified


def test_canonical_bytes_match_a_standard_json_encoder() -> None:
    event = {"specversion": "1.0", "data": {"parties": [{"id": "jax", "name": "JAX"}]}, "n": 3}
    expected = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_bytes(event) == expected.encode()


def test_decode_accepts_bytes_and_str() -> None:
    assert decode(b'{"a":1}') == decode('{"a":1}') == {"a": 1}


def test_chain_hash_definition_and_genesis() -> None:
    assert bytes(32) == GENESIS
    first = canonical_bytes({"id": "a", "sequence": 1})
    second = canonical_bytes({"id": "b", "sequence": 2})
    h1 = chain_hash(GENESIS, first)
    h2 = chain_hash(h1, second)
    assert h1 == hashlib.sha256(bytes(32) + first).digest()
    assert h2 == hashlib.sha256(h1 + second).digest()
    assert len(h1) == len(h2) == 32


def test_chain_hash_detects_tampering_and_reordering() -> None:
    entries = [canonical_bytes({"id": str(i), "sequence": i}) for i in range(1, 5)]

    def head(items: list[bytes]) -> bytes:
        h = GENESIS
        for item in items:
            h = chain_hash(h, item)
        return h

    original = head(entries)
    tampered = [*entries[:2], canonical_bytes({"id": "X", "sequence": 3}), entries[3]]
    assert head(tampered) != original
    assert head([entries[1], entries[0], *entries[2:]]) != original
    assert head(entries[:-1]) != original


def test_content_digest_ignores_every_server_set_attribute() -> None:
    sent = {"specversion": "1.0", "id": "e1", "source": "urn:x", "data": {"a": 1}}
    stored = {
        **sent,
        "recordedtime": "2024-02-11T00:00:00.000000Z",
        "recordedby": "alice",
        "partition": 2,
        "sequence": 9,
        "hash": "00" * 32,
        "schemaversion": 1,
    }
    assert set(SERVER_SET) <= set(stored)
    assert content_digest(stored) == content_digest(sent)
    assert len(content_digest(sent)) == 32
    int(content_digest(sent), 16)  # lowercase hex
    assert content_digest(sent) == content_digest(sent).lower()


def test_content_digest_changes_with_content() -> None:
    sent = {"id": "e1", "data": {"a": 1}}
    assert content_digest(sent) != content_digest({"id": "e1", "data": {"a": 2}})
    assert content_digest(sent) != content_digest({"id": "e1", "data": {"a": 1}, "ext": "x"})
    assert content_digest({"data": {"a": 1}}) != content_digest({"data": {"a": 1.5}})


@given(json_objects)
def test_decode_inverts_canonical_bytes(event: dict[str, Any]) -> None:
    event.pop("hash", None)
    assert decode(canonical_bytes(event)) == event


@given(json_objects, st.randoms(use_true_random=False))
def test_canonical_bytes_do_not_depend_on_key_order(
    event: dict[str, Any], rng: random.Random
) -> None:
    shuffled = _reordered(event, rng)
    assert canonical_bytes(shuffled) == canonical_bytes(event)
    assert content_digest(shuffled) == content_digest(event)


@given(json_objects)
def test_canonical_bytes_are_sorted_compact_and_stable(event: dict[str, Any]) -> None:
    encoded = canonical_bytes(event)
    decoded = decode(encoded)
    assert _keys_sorted_everywhere(decoded)
    assert canonical_bytes(decoded) == encoded  # a fixed point: re-encoding changes nothing
    assert b"\n" not in encoded
    assert json.loads(encoded) == decoded


@given(json_objects, st.binary(min_size=32, max_size=32))
def test_chain_hash_is_sha256_of_prev_and_bytes(event: dict[str, Any], prev: bytes) -> None:
    encoded = canonical_bytes(event)
    assert chain_hash(prev, encoded) == hashlib.sha256(prev + encoded).digest()


# Envelope-shaped attributes: the keys a publisher may send (with extensions that sort
# anywhere, even among the server-set ones), string values where the envelope demands
# them, and free JSON (nested "source" keys included) in `data`.
_attr_strings = st.text(max_size=12)
_extension_names = st.sampled_from(["a", "ext", "priority", "region", "rz", "sa", "seq",
                                    "sequence1", "server", "sp", "zz", "source1"])
envelopes = st.fixed_dictionaries(
    {"specversion": st.just("1.0"), "id": _attr_strings, "source": _attr_strings,
     "type": _attr_strings, "subject": _attr_strings, "occurred": _attr_strings,
     "data": st.dictionaries(st.sampled_from(["source", "a", "zz", "sequence"]), json_values,
                             max_size=4)},
    optional={"time": _attr_strings, "datacontenttype": st.just("application/json"),
              "correlationid": _attr_strings, "causationid": _attr_strings,
              "traceparent": _attr_strings},
).flatmap(lambda base: st.dictionaries(_extension_names, json_scalars, max_size=2).map(
    lambda extensions: {**extensions, **base}))


@given(envelopes, _attr_strings, _attr_strings, st.integers(0, 1000), st.integers(1, 2**53),
       st.integers(1, 9))
def test_a_stamp_gives_exactly_the_canonical_bytes_of_the_stored_event(
    attrs: dict[str, Any], recordedtime: str, recordedby: str, partition: int, sequence: int,
    schemaversion: int,
) -> None:
    stamp = Stamp(recordedtime, recordedby, partition)
    stored = {**attrs, "recordedtime": recordedtime, "recordedby": recordedby,
              "partition": partition, "sequence": sequence, "schemaversion": schemaversion}
    assert stamp.stored(attrs, canonical_bytes(attrs), sequence, schemaversion) == (
        canonical_bytes(stored))


def test_a_stamp_is_not_fooled_by_source_keys_inside_values() -> None:
    attrs = {"specversion": "1.0", "id": 'x,"source":1', "source": ',"source":"',
             "type": "t", "subject": "s", "occurred": "2024",
             "data": {"a": {"source": 1}, "source": [',"source":']},
             "traceparent": ',"source":"x"'}
    stored = {**attrs, "recordedtime": "T", "recordedby": 'a"b', "partition": 1,
              "sequence": 2, "schemaversion": 1}
    assert Stamp("T", 'a"b', 1).stored(attrs, canonical_bytes(attrs), 2, 1) == (
        canonical_bytes(stored))
