"""`timeline import --format ...` as users run it: a real CLI process against the test
server, a real worker projecting, counts checked against the files themselves.

The real files are read from ../shared/data (beside the repository) when present;
those tests skip, saying so, when it is absent. The fixtures under tests/fixtures
always run."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from events.stored import stored_decoder
from projections.fold import Query
from services.bootstrap import Services
from services.importers.countries import iso_from_fips
from services.log import keys
from tests.integration.projection_helpers import read_all, wait_projected
from tests.processes import ROOT, env_for

SHARED = ROOT.parent / "shared" / "data"
FIXTURES = ROOT / "tests" / "fixtures"
GDELT = SHARED / "gdelt" / "gdelt2_20191024143000.export.tsv"
ACQUISITIONS = SHARED / "acquisitions" / "alice_tech_giants_acquisitions.csv"
TIMELINEJS = SHARED / "timelinejs"


def shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent: the real-data import test needs ../shared/data")
    return path


async def run_import(fmt: str, path: Path, redis_url: str, rejects: Path,
                     *extra: str) -> tuple[dict[str, int], int]:
    """(tally, exit status) of one `timeline import` process."""
    args = [sys.executable, "-m", "services.cli", "import", "--format", fmt, str(path),
            "--rejects", str(rejects), *extra]
    done = await asyncio.to_thread(
        subprocess.run, args, env=env_for(redis_url), cwd=ROOT, capture_output=True,
        text=True, timeout=120, check=False, stdin=subprocess.DEVNULL)
    try:
        tally = json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"exit {done.returncode}, stdout {done.stdout!r}, stderr {done.stderr}")
    assert done.returncode == (1 if tally["rejected"] else 0), done.stderr
    return tally, done.returncode


async def import_twice(fmt: str, path: Path, redis_url: str, tmp_path: Path,
                       *extra: str) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """Import, then import again: the second run appends nothing. Returns the first
    tally and the rejections written by the first run."""
    rejects = tmp_path / f"{path.name}.rejects.jsonl"
    first, _ = await run_import(fmt, path, redis_url, rejects, *extra)
    written = ([json.loads(line) for line in rejects.read_text().splitlines()]
               if rejects.exists() else [])
    assert len(written) == first["rejected"]
    second, _ = await run_import(fmt, path, redis_url, tmp_path / "again.jsonl", *extra)
    assert second == {"appended": 0, "duplicate": first["appended"],
                      "rejected": first["rejected"]}
    return first, written


async def stored(services: Services) -> list[dict[str, Any]]:
    """Every event in the log, as stored."""
    found = []
    for partition in range(services.partitions):
        for _, fields in await services.client.xrange(keys.log(partition), "-", "+"):
            event = stored_decoder.decode(fields[b"event"])
            found.append({"id": event.id, "type": event.type, "subject": event.subject,
                          "occurred": event.occurred, "data": event.data,
                          "source": event.source})
    return found


async def timeline(services: Services, name: str) -> dict[str, Any]:
    entries = await read_all(services, Query(timeline=name), 1000)
    return {e.id: e for e in entries}


# --- GDELT ----------------------------------------------------------------------------


def expected_gdelt(path: Path) -> dict[str, int]:
    """Counts from the raw export by the README's rules, without the importer's code."""
    rows = [line.split("\t") for line in path.read_text().splitlines() if line.strip()]

    def usable(r: list[str]) -> bool:
        try:
            dt.datetime.strptime(r[1], "%Y%m%d")
            dt.datetime.strptime(r[59], "%Y%m%d%H%M%S")
        except ValueError:
            return False
        return bool(r[6].strip() or r[16].strip())

    good = [r for r in rows if len(r) == 61 and usable(r)]
    two = [r for r in good if r[6].strip() and r[16].strip() and r[6].strip() != r[16].strip()]
    visits, made, hosted = 0, Counter[tuple[str, str, str]](), Counter[tuple[str, str, str]]()
    for r in good:
        if r[26] not in ("042", "043") or iso_from_fips(r[53]) is None:
            continue
        visitor, host = (r[6], r[16]) if r[26] == "042" else (r[16], r[6])
        if not visitor.strip():
            continue
        visits += 1
        if host.strip() and host != visitor:
            (made if r[26] == "042" else hosted)[(r[1], visitor, host)] += 1
    pairs = sum(min(n, hosted[k]) for k, n in made.items())
    return {
        "rows": len(rows), "rejected": len(rows) - len(good), "appended": len(good) - pairs,
        "mou.signed": sum(1 for r in two if r[26] == "057"),
        "meeting.held": sum(1 for r in two if r[26].startswith("04")
                            and r[26] not in ("042", "043")),
        "site.visited": visits - pairs,
    }


@pytest.mark.usefixtures("worker")
async def test_gdelt_real_export(services: Services, redis_url: str, tmp_path: Path) -> None:
    path = shared(GDELT)
    expected = expected_gdelt(path)
    tally, rejects = await import_twice("gdelt", path, redis_url, tmp_path)
    assert (tally["appended"], tally["rejected"]) == (expected["appended"], expected["rejected"])
    assert all(r["reasons"] for r in rejects)
    events = await stored(services)
    assert len(events) == expected["appended"]
    types = Counter(e["type"] for e in events)
    for name in ("mou.signed", "meeting.held", "site.visited"):
        assert types[name] == expected[name], name
    assert sum(n for t, n in types.items() if t.startswith("x-gdelt.")) == (
        expected["appended"] - expected["mou.signed"] - expected["meeting.held"]
        - expected["site.visited"])
    # spot checks, projected: a merged visit on the visitor's and the place's timelines
    await wait_projected(services)
    kl = (await timeline(services, "entity:kuala-lumpur"))["881990854+881990835"]
    assert (kl.type, kl.occurred, kl.precision) == ("site.visited", "2018-10-24", "day")
    assert kl.place == {"country": "MY", "city": "Kuala Lumpur", "region": "Kuala Lumpur"}
    assert {e.id: e.role for e in kl.entities} == {"kuala-lumpur": "visitor",
                                                   "tourism-industry": "host"}
    assert "881990854+881990835" in await timeline(services, "place:MY")
    assert "881990869+881990874" in await timeline(services, "place:GB")  # FIPS UK


async def test_gdelt_fixture(services: Services, redis_url: str, tmp_path: Path) -> None:
    path = FIXTURES / "gdelt" / "sample.export.tsv"
    expected = expected_gdelt(path)
    # 14 rows: 3 unusable (no actors, bad SQLDATE, 60 columns); 3 mirrored pairs
    assert (expected["rows"], expected["rejected"], expected["appended"]) == (14, 3, 8)
    tally, rejects = await import_twice("gdelt", path, redis_url, tmp_path)
    assert (tally["appended"], tally["rejected"]) == (8, 3)
    assert [r["line"] for r in rejects] == [12, 13, 14]
    assert [r["id"] for r in rejects] == ["900000001", "900000002", "900000003"]


# --- acquisitions ---------------------------------------------------------------------


def expected_acquisitions(path: Path, this_year: int) -> dict[str, Any]:
    ok: list[dict[str, str]] = []
    rejected = 0
    for row in csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"), newline="")):
        match = re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{4})", row["Deal announced on"])
        try:
            day = dt.date(int(match[3]), int(match[2]), int(match[1])) if match else None
        except ValueError:
            day = None
        same = (re.sub(r"[^a-z0-9]", "", row["Acquiring Company"].lower())
                == re.sub(r"[^a-z0-9]", "", row["Acquired Company"].lower()))
        price_ok = row["Price"].lower() in ("", "undisclosed amount") or bool(
            re.fullmatch(r"\$[\d,]+", row["Price"]))
        if day and 1970 <= day.year <= this_year and not same and price_ok:
            ok.append({**row, "day": day.isoformat()})
        else:
            rejected += 1
    return {"ok": ok, "rejected": rejected}


@pytest.mark.usefixtures("worker")
async def test_acquisitions_real_file(services: Services, redis_url: str,
                                      tmp_path: Path) -> None:
    path = shared(ACQUISITIONS)
    expected = expected_acquisitions(path, dt.date.today().year)
    tally, rejects = await import_twice("acquisitions", path, redis_url, tmp_path)
    assert (tally["appended"], tally["rejected"]) == (len(expected["ok"]), expected["rejected"])
    reasons = " ".join(r["reasons"][0] for r in rejects)
    assert reasons.count("impossible year 1905") == path.read_text().count("/1905,")
    events = {e["id"]: e for e in await stored(services)}
    priced = next(r for r in expected["ok"] if r["Price"].startswith("$"))
    event = next(e for e in events.values() if e["data"]["target"]["name"]
                 == priced["Acquired Company"] and e["occurred"] == priced["day"])
    assert event["data"]["value"] == {"amount": int(re.sub(r"[$,]", "", priced["Price"])),
                                      "currency": "USD"}
    await wait_projected(services)
    adobe = await timeline(services, "entity:adobe")
    aldus = adobe["adobe-systems-acquired-aldus-corp-in-1994"]
    assert (aldus.occurred, aldus.type) == ("1994-08-31", "acquisition.announced")
    assert aldus.place == {"country": "US", "city": "Seattle", "region": "Washington"}
    assert {e.id for e in aldus.entities} == {"adobe", "aldus-corp"}
    assert "adobe-systems-acquired-accelio-corporation-in-2002" in await timeline(
        services, "place:CA:ottawa")
    assert len(adobe) == sum(1 for r in expected["ok"] if r["Acquiring Company"] == "Adobe")


async def test_acquisitions_fixture_finds_its_companies(
    services: Services, redis_url: str, tmp_path: Path
) -> None:
    path = FIXTURES / "acquisitions" / "sample_acquisitions.csv"
    tally, rejects = await import_twice("acquisitions", path, redis_url, tmp_path)
    # 12 rows: a 1905 date, a malformed date, a self-acquisition, a year 2999, a price in
    # words and 29 February 2011 are rejected
    assert (tally["appended"], tally["rejected"]) == (6, 6)
    assert [r["line"] for r in rejects] == [4, 5, 7, 11, 12, 13]
    events = {e["id"]: e for e in await stored(services)}
    assert events["adobe-systems-acquired-accelio-corporation-in-2002"]["data"]["place"] == {
        "country": "CA", "city": "Ottawa", "region": "Ontario"}


# --- TimelineJS -----------------------------------------------------------------------


def _year(slide: dict[str, Any]) -> bool:
    start = slide.get("start_date")
    return isinstance(start, dict) and bool(re.fullmatch(r"\d{1,4}", str(start.get("year"))))


@pytest.mark.usefixtures("worker")
async def test_timelinejs_real_files(services: Services, redis_url: str,
                                     tmp_path: Path) -> None:
    files = sorted(shared(TIMELINEJS).glob("*.json"))
    assert files
    total = 0
    for path in files:
        slides = json.loads(path.read_text())["events"]
        tally, _ = await import_twice("timelinejs", path, redis_url, tmp_path)
        assert (tally["appended"], tally["rejected"]) == (
            sum(1 for s in slides if _year(s)), sum(1 for s in slides if not _year(s)))
        total += tally["appended"]
    events = await stored(services)
    assert len(events) == total
    assert {e["type"] for e in events} == {"x-timelinejs.entry"}
    await wait_projected(services)
    women = await timeline(services, "entity:women-in-computing")
    ada = next(e for e in women.values() if e.headline == "Ada Lovelace")
    assert (ada.occurred, ada.precision) == ("1815-12-10/1852-11-27", "day")
    houston = await timeline(services, "entity:whitney-houston-1963-2012")
    years = [e for e in houston.values() if e.precision == "year"]
    assert years and all(len(e.occurred) == 4 for e in years)
    eras = await timeline(services, "entity:eras-test")
    assert any(e.occurred == "0602/0629" for e in eras.values())


async def test_timelinejs_fixture(services: Services, redis_url: str, tmp_path: Path) -> None:
    path = FIXTURES / "timelinejs" / "sample.json"
    tally, rejects = await import_twice("timelinejs", path, redis_url, tmp_path)
    # 9 slides: a BCE year, no date, month 13 and an interval ending first are rejected
    assert (tally["appended"], tally["rejected"]) == (5, 4)
    assert [r["line"] for r in rejects] == [6, 7, 8, 9]
    assert "ends before it starts" in rejects[3]["reasons"][0]


# --- CSV and the whole-file refusals --------------------------------------------------


async def test_csv_fixture(services: Services, redis_url: str, tmp_path: Path) -> None:
    path = FIXTURES / "csv" / "sample.csv"
    tally, rejects = await import_twice("csv", path, redis_url, tmp_path)
    # 12 rows: bad parties, bad data JSON, a city without a country, month 13, three
    # parties for two roles, a missing target
    assert (tally["appended"], tally["rejected"]) == (6, 6)
    assert [r["line"] for r in rejects] == [9, 10, 11, 12, 13, 14]
    events = {e["id"]: e for e in await stored(services)}
    assert events["invest-1"]["source"] == "urn:csv:sample"
    assert events["visit-1"]["data"]["place"] == {"country": "PL", "city": "Wroclaw"}


async def test_a_file_of_the_wrong_shape_appends_nothing(
    services: Services, redis_url: str, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("id,type,subject,occurred,colour\n1,x-a.b,s,2024,red\n")
    args = [sys.executable, "-m", "services.cli", "import", "--format", "csv", str(bad)]
    done = await asyncio.to_thread(subprocess.run, args, env=env_for(redis_url), cwd=ROOT,
                                   capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "unknown column(s) colour" in " ".join(done.stderr.split())
    assert await services.log.total() == 0
    done = await asyncio.to_thread(
        subprocess.run, [*args[:5], "xml", str(bad)], env=env_for(redis_url), cwd=ROOT,
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "unsupported format 'xml'" in done.stderr
