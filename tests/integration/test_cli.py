"""The `timeline` command line (DESIGN 5, 6), run as users run it: a real
process per command, against the test server or its own embedded server."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from services.redis.embedded import EmbeddedServer, binary_path, running_url
from tests import factory
from tests.conftest import sync_client
from tests.processes import env_for

PRECISION_RANK = {"year": 0, "month": 1, "day": 2}


def cli(args: list[str], env: dict[str, str], cwd: Path, stdin: str | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args], env=env, cwd=cwd, input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None, capture_output=True, text=True,
        timeout=timeout, check=False,
    )


def tally_of(done: subprocess.CompletedProcess[str]) -> dict[str, int]:
    try:
        value = json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"stdout is not JSON (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
    assert isinstance(value, dict)
    return value


def write_jsonl(path: Path, events: list[Any]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def log_length(url: str) -> int:
    with sync_client(url) as client:
        return sum(int(client.xlen(key)) for key in client.scan_iter("timeline:{p*}:log"))


@pytest.fixture
def env(redis_url: str) -> dict[str, str]:
    # Wide enough that rich never wraps a table cell.
    return env_for(redis_url, COLUMNS="250")


@pytest.fixture
def story_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "story.jsonl", factory.story(30))


# -- config -------------------------------------------------------------------------------

def test_config_prints_json_with_secrets_masked(tmp_path: Path) -> None:
    password, digest_key = "Pa55-w0rd-q7", "digest-s3cret-key"
    token_hash = hashlib.sha256(b"token-secret").hexdigest()
    env = env_for(f"redis://timeline:{password}@127.0.0.1:6399/0",
                  TIMELINE_TOKENS=f"ops:publish+read+audit:{token_hash}",
                  TIMELINE_DIGEST_KEY=digest_key)
    done = cli(["config"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["tokens"] == "***"
    assert shown["digest_key"] == "***"
    assert shown["redis_url"] == "redis://timeline:***@127.0.0.1:6399/0"
    assert shown["partitions"] == 8
    assert shown["log_format"] == "json"
    for secret in (password, digest_key, token_hash):
        assert secret not in done.stdout
        assert secret not in done.stderr


def test_config_masks_a_password_given_as_a_query_parameter(tmp_path: Path) -> None:
    env = env_for("redis://127.0.0.1:6379/0?password=s3cret&db=0")
    done = cli(["config"], env, tmp_path)
    assert done.returncode == 0
    assert "s3cret" not in done.stdout and "password=***" in done.stdout


def test_config_without_secrets_shows_none(tmp_path: Path) -> None:
    env = env_for(None, TIMELINE_DATA_DIR=str(tmp_path / "data"))
    for name in ("TIMELINE_REDIS_URL", "TIMELINE_TOKENS", "TIMELINE_TOKENS_FILE",
                 "TIMELINE_DIGEST_KEY"):
        env.pop(name, None)
    done = cli(["config"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["redis_url"] is None and shown["tokens"] is None
    assert shown["data_dir"] == str(tmp_path / "data")
    assert not (tmp_path / "data").exists()  # printing the configuration starts nothing


def test_config_error_exits_2(tmp_path: Path) -> None:
    done = cli(["config"], env_for(None, TIMELINE_PARTITIONS="many"), tmp_path)
    assert done.returncode == 2
    assert "TIMELINE_PARTITIONS" in done.stderr


def test_a_log_of_another_partition_count_is_refused_as_such(
    env: dict[str, str], redis_url: str, tmp_path: Path,
) -> None:
    assert cli(["show", "entity", "anyone"], env, tmp_path).returncode == 0  # an 8-partition log
    done = cli(["show", "entity", "anyone"], {**env, "TIMELINE_PARTITIONS": "4"}, tmp_path)
    assert done.returncode == 2
    # Not "cannot reach the server", as the CLI said of every RuntimeError before.
    assert "refused: the log has 8 partitions but TIMELINE_PARTITIONS is 4" in done.stderr


# -- publish and import -------------------------------------------------------------------

@pytest.mark.parametrize("command", [["publish"], ["import", "--format", "jsonl"]])
def test_publish_tallies_and_is_idempotent(
    command: list[str], story_file: Path, env: dict[str, str], redis_url: str, tmp_path: Path,
) -> None:
    first = cli([*command, str(story_file)], env, tmp_path)
    assert first.returncode == 0, first.stderr
    assert tally_of(first) == {"appended": 30, "duplicate": 0, "rejected": 0}
    assert log_length(redis_url) == 30
    again = cli([*command, str(story_file)], env, tmp_path)
    assert again.returncode == 0, again.stderr
    assert tally_of(again) == {"appended": 0, "duplicate": 30, "rejected": 0}
    assert log_length(redis_url) == 30
    assert not list(tmp_path.glob("*.rejects.jsonl"))


def _invalid_event() -> str:
    bad = factory.story(3, seed=11)[0]
    bad["id"] = "bad-one"
    del bad["subject"]
    return json.dumps(bad)


@pytest.mark.parametrize("bad_line,reason", [
    (_invalid_event(), "subject"),
    ('{"specversion": "1.0", "id": "broken", ', "malformed JSON"),
])
@pytest.mark.parametrize("command", [["publish"], ["import", "--format", "jsonl"]])
def test_an_invalid_line_is_rejected_with_its_reason(
    command: list[str], bad_line: str, reason: str, env: dict[str, str], redis_url: str,
    tmp_path: Path,
) -> None:
    lines = [json.dumps(e) for e in factory.story(5)]
    lines.insert(2, bad_line)  # line 3
    source = tmp_path / "mixed.jsonl"
    source.write_text("\n".join(lines) + "\n")
    done = cli([*command, str(source)], env, tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert tally_of(done) == {"appended": 5, "duplicate": 0, "rejected": 1}
    assert log_length(redis_url) == 5
    rejects = tmp_path / "mixed.jsonl.rejects.jsonl"
    assert str(rejects) in done.stderr
    [rejection] = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert rejection["line"] == 3
    assert rejection["id"] == ("bad-one" if reason == "subject" else None)
    assert any(reason in r for r in rejection["reasons"]), rejection


def test_import_writes_rejections_where_asked(env: dict[str, str], tmp_path: Path) -> None:
    source = tmp_path / "one.jsonl"
    source.write_text(_invalid_event() + "\n")
    target = tmp_path / "out" / "why.jsonl"
    target.parent.mkdir()
    done = cli(["import", "--format", "jsonl", "--rejects", str(target), str(source)], env,
               tmp_path)
    assert done.returncode == 1
    assert tally_of(done) == {"appended": 0, "duplicate": 0, "rejected": 1}
    assert json.loads(target.read_text())["line"] == 1
    assert not (tmp_path / "one.jsonl.rejects.jsonl").exists()


def test_import_of_an_unsupported_format_exits_2(
    story_file: Path, env: dict[str, str], redis_url: str, tmp_path: Path,
) -> None:
    done = cli(["import", "--format", "xml", str(story_file)], env, tmp_path)
    assert done.returncode == 2
    assert "xml" in done.stderr
    assert done.stdout.strip() == ""
    assert log_length(redis_url) == 0


def test_publish_reads_stdin(env: dict[str, str], redis_url: str, tmp_path: Path) -> None:
    text = "".join(json.dumps(e) + "\n" for e in factory.story(30))
    done = cli(["publish", "-"], env, tmp_path, stdin=text)
    assert done.returncode == 0, done.stderr
    assert tally_of(done) == {"appended": 30, "duplicate": 0, "rejected": 0}
    bad = cli(["publish", "-"], env, tmp_path, stdin=text + _invalid_event() + "\n")
    assert bad.returncode == 1
    assert tally_of(bad) == {"appended": 0, "duplicate": 30, "rejected": 1}
    [rejection] = [json.loads(line) for line in
                   (tmp_path / "stdin.rejects.jsonl").read_text().splitlines()]
    assert rejection["line"] == 31
    assert log_length(redis_url) == 30
    fixed = cli(["publish", "-"], env, tmp_path, stdin=text)  # the bad line taken out
    assert fixed.returncode == 0, fixed.stderr
    assert not (tmp_path / "stdin.rejects.jsonl").exists(), "an earlier run's, read as this one's"
    assert "removed an earlier run's rejections" in fixed.stderr


def test_stdin_that_is_not_utf8_is_refused_whole(
    env: dict[str, str], redis_url: str, tmp_path: Path
) -> None:
    """In UTF-8 mode (a C locale, say) Python's stdin would pass invalid bytes on as
    lone surrogates; the last line's would fail only after the first batches."""
    text = "".join(json.dumps(e) + "\n" for e in factory.story(1200, seed=4))
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "publish", "-"], cwd=tmp_path,
        env={**env, "PYTHONUTF8": "1"}, input=text.encode() + b'"\xff"\n',
        capture_output=True, timeout=120)
    stderr = done.stderr.decode()
    assert done.returncode == 2, stderr
    assert "cannot read -" in stderr and "Traceback" not in stderr
    assert log_length(redis_url) == 0


@pytest.mark.parametrize(("fmt", "streamed"), [("jsonl", True), ("csv", False)])
def test_only_json_records_reach_the_append_undecoded(
    fmt: str, streamed: bool, env: dict[str, str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """JSON lines are decoded as they are appended (a large file is never held decoded
    whole); a CSV file is read whole first, so one broken part-way appends nothing."""
    from typer.testing import CliRunner

    import services.cli.main as main
    from services.publishing import Tally

    taken: list[Any] = []

    async def publish_all(appender: Any, items: Any, *args: Any, **kwargs: Any) -> Tally:
        taken.append(items)
        return Tally()

    monkeypatch.setattr(main, "publish_all", publish_all)
    if fmt == "jsonl":
        path = write_jsonl(tmp_path / "e.jsonl", factory.story(3))
    else:
        path = tmp_path / "e.csv"
        path.write_text("id,type,subject,occurred,parties\n"
                        + "".join(f"c{i},mou.signed,lg,2024-01,lg;jax\n" for i in range(3)))
    done = CliRunner().invoke(main.app, ["import", "--format", fmt, str(path)], env=env)
    assert done.exit_code == 0, done.output
    [items] = taken
    assert len(items) == 3
    assert isinstance(items, list) is not streamed


def test_publish_a_json_array(env: dict[str, str], tmp_path: Path) -> None:
    source = tmp_path / "events.json"
    source.write_text(json.dumps(factory.story(7)))
    done = cli(["publish", str(source)], env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert tally_of(done) == {"appended": 7, "duplicate": 0, "rejected": 0}


def test_publish_of_a_missing_file_fails_cleanly(env: dict[str, str], tmp_path: Path) -> None:
    done = cli(["publish", str(tmp_path / "absent.jsonl")], env, tmp_path)
    assert done.returncode == 2
    assert "cannot read" in done.stderr and "Traceback" not in done.stderr
    assert '"appended"' not in done.stdout


def test_publish_to_an_unreachable_server_fails_cleanly(
    story_file: Path, tmp_path: Path
) -> None:
    from services.redis.embedded import free_port

    env = env_for(f"redis://127.0.0.1:{free_port()}/0")
    done = cli(["publish", str(story_file)], env, tmp_path)
    assert done.returncode == 2
    assert "cannot reach the server" in done.stderr and "Traceback" not in done.stderr
    done = cli(["audit", "unpark"], env, tmp_path)  # not "the retry failed", exit 1
    assert done.returncode == 2
    assert "cannot reach the server" in done.stderr and "Traceback" not in done.stderr
    cluster = env_for(f"redis+cluster://127.0.0.1:{free_port()}", COLUMNS="40")
    done = cli(["show", "entity", "org-1"], cluster, tmp_path)  # was a traceback, exit 1
    assert done.returncode == 2, done.stderr
    message = done.stderr.strip()
    assert message.startswith("cannot reach the server: ") and "Traceback" not in message
    assert "\n" not in message  # one line, however narrow the terminal: a log keeps it whole


def test_a_server_that_never_answers_is_reported_not_waited_on(tmp_path: Path) -> None:
    """A stopped server takes connections and never answers: `show` waited for minutes."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0))  # accepts (the backlog), never reads
    with listener:
        port = listener.getsockname()[1]
        env = env_for(f"redis://user:s3cret@127.0.0.1:{port}/0")
        done = cli(["show", "entity", "org-1"], env, tmp_path)  # cli's own timeout is 60 s
    assert done.returncode == 2, done.stderr
    assert "cannot reach the server: redis://user:***@127.0.0.1" in done.stderr
    assert "did not answer" in done.stderr and "s3cret" not in done.stderr


def test_publish_one_pretty_printed_event(env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    path.write_text(json.dumps(factory.story(1)[0], indent=2))
    done = cli(["publish", str(path)], env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert tally_of(done) == {"appended": 1, "duplicate": 0, "rejected": 0}


@pytest.mark.parametrize("command", [["publish"], ["import", "--format", "jsonl"]])
def test_a_pretty_printed_event_cut_short_is_refused_whole(
    command: list[str], env: dict[str, str], redis_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "cut.json"
    path.write_text(json.dumps(factory.story(1)[0], indent=2)[:-40])
    done = cli([*command, str(path)], env, tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "is not valid JSON" in done.stderr and "Traceback" not in done.stderr
    assert log_length(redis_url) == 0
    assert not list(tmp_path.glob("*.rejects.jsonl"))


# -- show ---------------------------------------------------------------------------------

ENTITY = "org-1"


def entity_events() -> list[dict[str, Any]]:
    """The 30-event story plus events of ENTITY at every precision, some with a counterpart."""
    rng = random.Random(3)
    own = [factory.event(1000 + i, rng, subject=ENTITY) for i in range(8)]
    dates = ["2023", "2023-12", "2023-12-01", "2023-12-01/2023-12-09", "2022-05?", "2024~",
             "2023-12-01", "2021-02-03%"]
    for event, occurred in zip(own, dates, strict=True):
        event["occurred"] = occurred
    mou = {"specversion": "1.0", "id": "mou-1", "source": "urn:test:cli", "type": "mou.signed",
           "subject": "org-2", "occurred": "2023-12",
           "data": {"parties": [factory.ref("org-2"), factory.ref(ENTITY)],
                    "headline": "Org 2 and Org 1 sign an MOU"}}
    return [*factory.story(30), *own, mou]


def involves(event: dict[str, Any], entity: str) -> bool:
    def named(value: Any) -> bool:
        if isinstance(value, dict):
            return value.get("id") == entity or any(named(v) for v in value.values())
        if isinstance(value, list):
            return any(named(v) for v in value)
        return False

    return event["subject"] == entity or named(event["data"])


def timeline_order(entry: dict[str, Any]) -> tuple[str, int, str, str, str]:
    return (entry["occurred_start"], PRECISION_RANK[entry["precision"]], entry["recordedtime"],
            entry["source"], entry["id"])


def show_json(args: list[str], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    done = cli(["show", *args, "--format", "json"], env, cwd)
    assert done.returncode == 0, done.stderr
    value = json.loads(done.stdout)
    assert isinstance(value, dict)
    return value


def test_show_an_entity_timeline(worker: object, env: dict[str, str], tmp_path: Path) -> None:
    events = entity_events()
    expected = {e["id"]: e for e in events if involves(e, ENTITY)}
    assert len(expected) == 9
    done = cli(["publish", str(write_jsonl(tmp_path / "events.jsonl", events))], env, tmp_path)
    assert done.returncode == 0, done.stderr

    deadline = time.monotonic() + 30
    while True:  # the worker projects asynchronously
        shown = show_json(["entity", ENTITY], env, tmp_path)
        if len(shown["entries"]) >= len(expected) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    entries = shown["entries"]
    assert shown["timeline"] == {"kind": "entity", "key": ENTITY}
    assert shown["next_cursor"] is None
    assert sorted(e["id"] for e in entries) == sorted(expected)
    for entry in entries:
        assert entry["occurred"] == expected[entry["id"]]["occurred"]
        assert entry["status"] == "active"
        assert ENTITY in [ref["id"] for ref in entry["entities"]]
    assert entries == sorted(entries, key=timeline_order)
    # Earliest day first; on the same day (2023-12-01) coarser precision first; then
    # recordedtime, source, id (e-1001 and mou-1 may share a recordedtime: either order).
    ids = [e["id"] for e in entries]
    assert ids[:3] == ["e-1007", "e-1004", "e-1000"]  # 2021-02-03%, 2022-05?, 2023
    assert set(ids[3:5]) == {"e-1001", "mou-1"}  # 2023-12
    assert ids[5:] == ["e-1002", "e-1003", "e-1006", "e-1005"]  # days of 2023-12, then 2024~

    newest_first = show_json(["entity", ENTITY, "--order", "desc"], env, tmp_path)["entries"]
    assert [e["id"] for e in newest_first] == [e["id"] for e in reversed(entries)]
    page = show_json(["entity", ENTITY, "--limit", "3"], env, tmp_path)
    assert [e["id"] for e in page["entries"]] == [e["id"] for e in entries[:3]]
    assert page["next_cursor"]
    after = show_json(["entity", ENTITY, "--limit", "3", "--cursor", page["next_cursor"]],
                      env, tmp_path)
    assert [e["id"] for e in after["entries"]] == [e["id"] for e in entries[3:6]]
    rest = cli(["show", "entity", ENTITY, "--format", "csv", "--cursor", page["next_cursor"]],
               env, tmp_path)
    assert rest.returncode == 0, rest.stderr
    assert [row["id"] for row in csv.DictReader(io.StringIO(rest.stdout))] == [
        e["id"] for e in entries[3:]]
    paged = cli(["show", "entity", ENTITY, "--limit", "3"], {**env, "COLUMNS": "60"}, tmp_path)
    assert paged.returncode == 0, paged.stderr
    assert f"next page: --cursor {page['next_cursor']}\n" in paged.stdout  # one line, whole
    pair = show_json(["pair", ENTITY, "org-2"], env, tmp_path)["entries"]
    assert "mou-1" in [e["id"] for e in pair]

    table = cli(["show", "entity", ENTITY, "--format", "table"], env, tmp_path)
    assert table.returncode == 0, table.stderr
    assert "Org 2 and Org 1 sign an MOU" in table.stdout
    assert f"entity {ENTITY}" in table.stdout
    for entry in entries:
        assert entry["type"] in table.stdout


def test_a_capped_export_names_the_cursor_that_continues_it(
    worker: object, env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    import services.exports.pages as pages
    from services.cli.main import app

    expected = [e["id"] for e in entity_events() if involves(e, ENTITY)]
    done = cli(["publish", str(write_jsonl(tmp_path / "e.jsonl", entity_events()))], env, tmp_path)
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 30
    while len(show_json(["entity", ENTITY], env, tmp_path)["entries"]) < len(expected):
        assert time.monotonic() < deadline, "not projected"
        time.sleep(0.2)
    collect = pages.collect  # the cap at 4 entries instead of 10,000, in this process
    monkeypatch.setattr(pages, "EXPORT_CAP", 4)
    monkeypatch.setattr(pages, "collect", lambda model, query, cursor=None: collect(
        model, query, cursor, cap=4))

    shown: list[str] = []
    cursor: list[str] = []
    while True:
        done = CliRunner().invoke(app, ["show", "entity", ENTITY, "--format", "csv", *cursor],
                                  env=env)
        assert done.exit_code == 0, done.output
        shown += [row["id"] for row in csv.DictReader(io.StringIO(done.stdout))]
        found = re.search(r"stopped at the export cap of 4 entries;.* --cursor (\S+) ",
                          done.stderr)
        if found is None:
            break
        cursor = ["--cursor", found.group(1)]
    assert len(shown) == len(expected) == 9 and sorted(shown) == sorted(expected)


def test_show_an_empty_timeline(env: dict[str, str], tmp_path: Path) -> None:
    shown = show_json(["topic", "ai"], env, tmp_path)
    assert shown == {"timeline": {"kind": "topic", "key": "ai"}, "entries": [],
                     "next_cursor": None}


@pytest.mark.parametrize("args", [
    ["show"],
    ["show", "entity"],
    ["show", "entity", "org-1", "org-2"],
    ["show", "pair", "org-1"],
    ["show", "all", "extra"],
    ["show", "galaxy", "org-1"],
    ["show", "entity", "Not An Id"],
    ["show", "place", "korea"],
    ["show", "pair", "org-1", "org-1"],
    ["show", "entity", "org-1", "--format", "xml"],
    ["show", "entity", "org-1", "--from", "last tuesday"],
    ["show", "entity", "org-1", "--order", "sideways"],
    ["show", "entity", "org-1", "--limit", "0"],
    ["show", "entity", "org-1", "--limit", "many"],
    ["show", "entity", "org-1", "--no-such-option"],
    ["show", "entity", "org-1", "--cursor", "not-a-cursor"],
    ["show", "entity", "org-1", "--order", "desc", "--cursor", "YXNjHmU"],  # "asc\x1ee"
])
def test_invalid_show_usage_exits_2(args: list[str], env: dict[str, str],
                                    tmp_path: Path) -> None:
    done = cli(args, env, tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.strip()
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(("args", "named"), [
    (["show", "entity", "org-1", "--from", "last tuesday"], "--from: "),
    (["show", "entity", "org-1", "--include-retracted", "--as-of", "yesterday"], "--as-of: "),
    (["show", "entity", "Not An Id"], "KEY: "),
    (["audit", "history", "urn:x", "e-1", "--as-of", "yesterday"], "--as-of: "),
])
def test_a_bad_option_is_named_as_typed(args: list[str], named: str, env: dict[str, str],
                                        tmp_path: Path) -> None:
    done = cli(args, env, tmp_path)  # was the HTTP parameter's name: "as_of: ", "path.0: "
    assert done.returncode == 2 and done.stderr.startswith(named), done.stderr


# -- the embedded server ------------------------------------------------------------------

def embedded_servers(data_dir: Path) -> list[int]:
    """PIDs of live (not zombie) server processes working in `data_dir`. (Valkey
    rewrites its command line, but it changes into its `--dir`.)"""
    binary = binary_path().resolve()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            if state == "Z" or (proc / "exe").resolve() != binary:
                continue
            if (proc / "cwd").resolve() == data_dir:
                found.append(int(proc.name))
        except (OSError, IndexError):
            continue
    return found


def test_publish_without_a_url_uses_its_own_durable_server(
    story_file: Path, tmp_path: Path,
) -> None:
    data_dir = (tmp_path / "data").resolve()
    env = env_for(None, TIMELINE_DATA_DIR=str(data_dir))
    env.pop("TIMELINE_REDIS_URL", None)

    first = cli(["publish", str(story_file)], env, tmp_path)
    assert first.returncode == 0, first.stderr
    assert tally_of(first) == {"appended": 30, "duplicate": 0, "rejected": 0}
    assert (data_dir / "appendonlydir").is_dir()
    assert embedded_servers(data_dir) == []  # stopped with the command
    assert running_url(data_dir) is None

    again = cli(["publish", str(story_file)], env, tmp_path)
    assert again.returncode == 0, again.stderr
    assert tally_of(again) == {"appended": 0, "duplicate": 30, "rejected": 0}  # from the AOF
    assert embedded_servers(data_dir) == []


def test_commands_use_the_running_embedded_server(story_file: Path, tmp_path: Path) -> None:
    """With a server already up for the data dir, commands use it and leave it running."""
    data_dir = (tmp_path / "data").resolve()
    server = EmbeddedServer(data_dir)
    url = server.start()
    try:
        env = env_for(None, TIMELINE_DATA_DIR=str(data_dir))
        env.pop("TIMELINE_REDIS_URL", None)
        done = cli(["publish", str(story_file)], env, tmp_path)
        assert done.returncode == 0, done.stderr
        assert tally_of(done) == {"appended": 30, "duplicate": 0, "rejected": 0}
        assert running_url(data_dir) == url
        assert log_length(url) == 30
        assert server.process is not None
        assert embedded_servers(data_dir) == [server.process.pid]
    finally:
        server.stop()
