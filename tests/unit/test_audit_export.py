"""Export lines, the restore file check (every break refuses the file), partition
routing, and the standalone tools/verify_chain.py, all without a server."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from events.codec import GENESIS, canonical_bytes
from services.audit.export import (
    RestoreRefused,
    check_lines,
    choose_partitions,
    export_line,
    parse_line,
)
from services.log import keys

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "verify_chain.py"


def stored(partition: int, sequence: int, subject: str, n: int) -> dict[str, Any]:
    return {"specversion": "1.0", "id": f"e-{partition}-{sequence}", "source": "urn:t",
            "type": "x-test.noted", "subject": subject, "occurred": "2023-12?",
            "data": {"n": n, "price": 1e16, "tiny": 1.5e-7, "text": "é\u2028\"quoted\""},
            "recordedtime": "2024-02-11T09:00:00.000001Z", "recordedby": "cli",
            "partition": partition, "sequence": sequence, "schemaversion": 1}


def subject_for(partition: int, count: int = 4) -> str:
    return next(s for s in (f"org-{i}" for i in range(1000))
                if keys.partition_of(s, count) == partition)


def export_lines(per_partition: int = 3, count: int = 4) -> list[bytes]:
    """An export of `count` partitions, each with a sound chain, as `timeline export` writes."""
    lines = []
    for partition in range(count):
        prev = GENESIS
        for sequence in range(1, per_partition + 1):
            body = canonical_bytes(stored(partition, sequence, subject_for(partition, count),
                                          sequence))
            prev = hashlib.sha256(prev + body).digest()
            lines.append(export_line(body, prev.hex().encode()))
    return lines


def numbered(lines: list[bytes]) -> list[tuple[int, bytes]]:
    return list(enumerate(lines, start=1))


def test_an_export_line_is_the_stored_event_plus_its_hash() -> None:
    body = canonical_bytes(stored(0, 1, "acme", 1))
    line = export_line(body, b"ab" * 32)
    decoded = json.loads(line)
    assert decoded["hash"] == "ab" * 32 and decoded["sequence"] == 1
    text = line.decode().rstrip("\n")
    assert (text[: text.rindex(',"hash":"')] + "}").encode() == body  # what the chain hashed
    parsed = parse_line(1, line)
    assert parsed.event == body  # re-encoding restores the exact bytes, floats included
    assert parsed.ids_value.startswith("1|") and parsed.ids_value.endswith("|x-test.noted|acme")


def test_a_sound_file_passes_with_its_heads_and_subjects() -> None:
    lines = export_lines()
    checked = check_lines(numbered(lines))
    assert checked.events == 12 and sorted(checked.heads) == [0, 1, 2, 3]
    assert checked.heads[2] == (3, json.loads(lines[8])["hash"])
    assert choose_partitions(checked.subjects, 4, fixed=True) == 4


def _without(line: bytes, name: str) -> bytes:
    value = msgspec.json.decode(line)
    del value[name]
    return msgspec.json.encode(value) + b"\n"


def _edit(line: bytes, **changes: Any) -> bytes:
    value = msgspec.json.decode(line)
    value.update(changes)
    return msgspec.json.encode(value) + b"\n"


@pytest.mark.parametrize(("break_it", "message"), [
    (lambda ls: ls.__setitem__(4, _edit(ls[4], occurred="2024")), "the file was altered"),
    (lambda ls: ls.pop(4), "expected 2"),
    (lambda ls: ls.insert(5, ls[4]), "expected 3"),
    (lambda ls: ls.__setitem__(slice(3, 5), [ls[4], ls[3]]), "expected 1"),
    (lambda ls: ls.__setitem__(0, b'{"not": "an event"}\n'), "`hash` is missing"),
    (lambda ls: ls.__setitem__(0, b"garbage\n"), "not JSON"),
    (lambda ls: ls.__setitem__(0, _edit(ls[0], hash="XX")), "64 lowercase hex"),
    (lambda ls: ls.__setitem__(0, b"[1]\n"), "not a JSON object"),
    # what the service never stores, whatever the file's hashes say
    (lambda ls: ls.__setitem__(0, _without(ls[0], "recordedtime")), "recordedtime"),
    (lambda ls: ls.__setitem__(0, _edit(ls[0], recordedtime="2024-02-11T10:00:00+01:00")),
     "not a UTC time"),
    (lambda ls: ls.__setitem__(0, _edit(ls[0], type="mou.signed", data={})),
     "`data.parties`"),
    (lambda ls: ls.__setitem__(0, _edit(ls[0], occurred="2023-13")), "`occurred`"),
    (lambda ls: ls.__setitem__(0, _edit(ls[0], schemaversion=0)), "`schemaversion` 0"),
    (lambda ls: ls.__setitem__(0, _edit(ls[0], schemaversion=2)), "`schemaversion` 2"),
])
def test_any_break_refuses_the_file(break_it: Any, message: str) -> None:
    lines = export_lines()
    break_it(lines)
    with pytest.raises(RestoreRefused, match=message):
        check_lines(numbered(lines))


def chained(events: list[dict[str, Any]]) -> list[bytes]:
    """Export lines for `events`, each partition's chain sound in the order given."""
    prev: dict[int, bytes] = {}
    lines = []
    for event in events:
        body = canonical_bytes(event)
        digest = hashlib.sha256(prev.get(event["partition"], GENESIS) + body).digest()
        prev[event["partition"]] = digest
        lines.append(export_line(body, digest.hex().encode()))
    return lines


@pytest.mark.parametrize(("events", "message"), [
    ([stored(0, 1, "org-a", 1), {**stored(1, 1, "org-b", 1), "id": "e-0-1"}],
     "line 2: \\(source, id\\) appears twice"),
    ([stored(0, 1, "org-a", 1), stored(1, 1, "org-a", 2)],
     "line 2: subject 'org-a' is in partitions 0 and 1"),
    ([stored(1024, 1, "org-a", 1)], "line 1: partition 1024 is out of range"),
])
def test_sound_chains_the_log_could_not_hold_are_refused(
    events: list[dict[str, Any]], message: str
) -> None:
    # Each chain verifies: the refusal is about what the log allows, one event in one
    # partition and one subject in one partition, not about the hashes.
    with pytest.raises(RestoreRefused, match=message):
        check_lines(numbered(chained(events)))


_DROP = object()  # an attribute to leave out


@pytest.mark.parametrize(("changes", "message"), [
    ({"subject": "Bad Subject!"}, "line 1: `subject`: required: an entity id"),
    ({"id": "id with space"}, "line 1: `id`: required"),
    ({"specversion": "0.3"}, "line 1: `specversion`: must be \"1.0\""),
    ({"specversion": _DROP}, "line 1: `specversion`: must be \"1.0\""),
    ({"foo": {"a": [1]}}, "line 1: `foo`: extension values must be"),
    ({"datacontenttype": "text/xml"}, "line 1: `datacontenttype`"),
    ({"source": "urn:" + "s" * 400}, "line 1: `source`: required: a URI-reference"),
    ({"expectedversion": 0}, "line 1: `expectedversion` is never stored"),
    ({"recordedby": ""}, "line 1: `recordedby` is not a principal's name"),
    ({"recordedby": 7}, "line 1: not a stored event: Expected `str`, got `int` - at "
                        "`\\$.recordedby`"),
    ({"type": "bogus", "schemaversion": 0}, "line 1: `type`: required: a catalog type"),
], ids=["subject", "id", "specversion", "no-specversion", "extension", "datacontenttype",
        "long-source", "expectedversion", "empty-recordedby", "recordedby-not-text", "type"])
def test_events_publish_would_refuse_are_refused_whatever_their_hashes(
    changes: dict[str, Any], message: str
) -> None:
    """Each file's chain is sound (hashes recomputed): only the event is wrong."""
    event = {**stored(0, 1, "org-a", 1), **changes}
    event = {name: value for name, value in event.items() if value is not _DROP}
    with pytest.raises(RestoreRefused, match=message):
        check_lines(numbered(chained([event])))


def amendment(sequence: int, subject: str, target: str, data: Any = None) -> dict[str, Any]:
    """A retraction (or, with `data`, a correction) in partition 0 of `target`."""
    body = {"target": target, "reason": "r"}
    return {**stored(0, sequence, subject, 0), "id": f"a-{sequence}",
            "type": "event.corrected" if data is not None else "event.retracted",
            "data": {**body, "data": data} if data is not None else body}


@pytest.mark.parametrize(("events", "message"), [
    ([stored(0, 1, "org-a", 1), amendment(2, "org-a", "never-stored")],
     "line 2: `data.target`: no event the file holds before it"),
    ([amendment(1, "org-a", "e-0-2"), stored(0, 2, "org-a", 1)],
     "line 1: `data.target`: no event the file holds before it"),
    ([stored(0, 1, "org-a", 1), amendment(2, "org-b", "e-0-1")],
     "line 2: `subject`: the target is about 'org-a', not 'org-b'"),
    ([stored(0, 1, "org-a", 1), amendment(2, "org-a", "e-0-1"),
      amendment(3, "org-a", "a-2")],
     "line 3: `data.target`: a correction or retraction cannot be amended"),
    ([{**stored(0, 1, "org-a", 1), "type": "mou.signed",
       "data": {"parties": [{"id": "org-a"}, {"id": "org-b"}]}},
      amendment(2, "org-a", "e-0-1", data={"n": 2})],
     "line 2: `data.data"),
], ids=["missing", "later", "other-subject", "of-an-amendment", "data-of-another-type"])
def test_amendments_the_append_path_would_refuse_are_refused(
    events: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(RestoreRefused, match=message):
        check_lines(numbered(chained(events)))


def test_amendments_of_earlier_events_pass() -> None:
    events = [stored(0, 1, "org-a", 1), amendment(2, "org-a", "e-0-1", data={"n": 5}),
              amendment(3, "org-a", "e-0-1")]
    assert check_lines(numbered(chained(events))).events == 3


def test_an_empty_file_is_refused() -> None:
    with pytest.raises(RestoreRefused, match="no events"):
        check_lines([])


def test_partition_count_is_the_logs_own_or_the_smallest_that_routes() -> None:
    subjects = {subject_for(p, 4): p for p in range(4)}
    assert choose_partitions(subjects, 4, fixed=False) == 4
    assert choose_partitions(subjects, 8, fixed=False) == 4 or all(
        keys.partition_of(s, 8) == p for s, p in subjects.items())
    with pytest.raises(RestoreRefused, match="TIMELINE_PARTITIONS"):
        choose_partitions({subject_for(3, 4): 3, subject_for(2, 4): 2, "zz-other": 7}, 4, True)


def run_tool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-I", str(TOOL), *args], capture_output=True,
                          text=True, input=stdin, timeout=30, check=False)


def test_the_standalone_script_checks_an_export(tmp_path: Path) -> None:
    lines = export_lines()
    good = tmp_path / "export.jsonl"
    good.write_bytes(b"".join(lines))
    done = run_tool(str(good))
    assert done.returncode == 0, done.stdout + done.stderr
    head = json.loads(lines[11])["hash"]
    assert f"partition 3: sequence 3 head {head}" in done.stdout
    assert "chain intact" in done.stdout
    assert run_tool(stdin=good.read_text()).returncode == 0

    lines[4] = _edit(lines[4], occurred="2024")  # key order changes too: still the rule holds
    bad = tmp_path / "tampered.jsonl"
    bad.write_bytes(b"".join(lines))
    done = run_tool(str(bad))
    assert done.returncode == 1 and "BROKEN: partition 1 sequence 2" in done.stdout


def test_the_standalone_script_checks_raw_log_pages(tmp_path: Path) -> None:
    pages = []
    for partition in range(2):
        entries = []
        for line in export_lines(count=4)[partition * 3:(partition + 1) * 3]:
            text = line.decode().rstrip("\n")
            value = json.loads(text)
            entries.append({"id": f"{value['sequence']}-0",
                            "event": text[: text.rindex(',"hash":"')] + "}",
                            "hash": value["hash"]})
        pages.append(json.dumps({"partition": partition, "entries": entries,
                                 "next_after": None}, ensure_ascii=False))
    files = []
    for i, page in enumerate(pages):
        files.append(tmp_path / f"page-{i}.json")
        files[-1].write_text(page + "\n", encoding="utf-8")
    done = run_tool(*map(str, files))
    assert done.returncode == 0, done.stdout
    assert "partition 1: sequence 3" in done.stdout
    first = json.loads(pages[0])
    first["entries"][1]["event"] = first["entries"][1]["event"].replace('"n":2', '"n":3')
    files[0].write_text(json.dumps(first, ensure_ascii=False), encoding="utf-8")
    done = run_tool(*map(str, files))
    assert done.returncode == 1 and "BROKEN: partition 0 sequence 2" in done.stdout


def test_the_standalone_script_reports_a_foreign_entry_and_chains_past_it(
    tmp_path: Path
) -> None:
    entries = []
    for line in export_lines(count=4)[:3]:  # partition 0's three entries
        text = line.decode().rstrip("\n")
        value = json.loads(text)
        entries.append({"id": f"{value['sequence']}-0",
                        "event": text[: text.rindex(',"hash":"')] + "}", "hash": value["hash"]})
    # As the API lists them: one with other fields, one with our fields but not `<n>-0`.
    entries.insert(1, {"id": "1-1", "other_fields": {"note": "by hand"}})
    entries.insert(3, {**entries[2], "id": "2-1"})
    page = tmp_path / "page.json"
    page.write_text(json.dumps({"partition": 0, "entries": entries, "next_after": None}))
    done = run_tool(str(page))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FOREIGN: partition 0 sequence 1" in done.stdout and "BROKEN" not in done.stdout
    assert "FOREIGN: partition 0 sequence 2" in done.stdout and "2 break(s)" in done.stdout
    assert f"partition 0: sequence 3 head {entries[-1]['hash']}" in done.stdout
