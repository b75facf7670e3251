"""What the CLI does with input it cannot use: a clean message and exit status, never a
traceback, and nothing half-written. None of it depends on the backend, so these run on
the single server only (tests/conftest.py, SINGLE_SERVER_MODULES)."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.bootstrap import Services
from tests import factory
from tests.processes import ROOT, env_for

FIXTURES = ROOT / "tests" / "fixtures"


def cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.cli", *args], env=env, cwd=cwd,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=60, check=False)


def cli_import(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return cli(["import", *args], env_for(redis_url, COLUMNS="250"), ROOT)


@pytest.fixture
def env(redis_url: str) -> dict[str, str]:
    return env_for(redis_url, COLUMNS="250")  # rich wraps no message


@pytest.mark.parametrize("args", [
    ["show", "entity", "[/x]"], ["show", "[/x]"], ["tail", "--entity", "[/x]"],
    ["import", "--format", "[/x]", "f"], ["export", "--format", "[/x]"],
    ["audit", "parked", "--format", "[/x]"], ["publish", "nodir[/]x"],
    ["restore", "nodir[/]x"], ["serve", "--workers", "-1"],
])
def test_input_that_looks_like_markup_is_a_clean_usage_error(
    args: list[str], env: dict[str, str], tmp_path: Path
) -> None:
    done = cli(args, env, tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "MarkupError" not in done.stderr
    if args[0] != "serve":  # typer's own usage error words it
        assert "[/x]" in done.stderr or "[/]" in done.stderr  # shown as typed, not eaten


def test_an_export_that_cannot_run_leaves_the_earlier_file_whole(tmp_path: Path) -> None:
    from services.redis.embedded import free_port

    earlier = tmp_path / "log.jsonl"
    earlier.write_text('{"kept": true}\n')
    env = env_for(f"redis://127.0.0.1:{free_port()}/0", COLUMNS="250")
    done = cli(["export", "-o", str(earlier)], env, tmp_path)
    assert done.returncode == 2 and "cannot reach the server" in done.stderr
    assert earlier.read_text() == '{"kept": true}\n'
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("log")) == [
        "log.jsonl"]


def test_an_export_onto_a_directory_is_a_clean_error(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    done = cli(["export", "-o", str(tmp_path / "out")], env, tmp_path)
    assert done.returncode == 2 and "cannot write" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no stray copy of the log


def test_a_name_that_looks_like_an_emoji_code_is_shown_as_typed(
    env: dict[str, str], tmp_path: Path
) -> None:
    done = cli(["publish", ":rocket:.jsonl"], env, tmp_path)
    assert done.returncode == 2
    assert "cannot read :rocket:.jsonl" in done.stderr, done.stderr  # was "cannot read 🚀.jsonl"


def test_an_export_through_a_symlink_leaves_it_a_symlink(
    env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "log-1.jsonl").write_text("earlier\n")
    (tmp_path / "latest.jsonl").symlink_to("log-1.jsonl")
    done = cli(["export", "-o", "latest.jsonl"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "latest.jsonl").is_symlink()  # was replaced by a file
    assert (tmp_path / "log-1.jsonl").read_text() == ""  # the export of an empty log
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.jsonl", "log-1.jsonl"]


def test_an_export_into_a_pipe_writes_into_it(env: dict[str, str], tmp_path: Path) -> None:
    """A rename over a pipe or a device put a file in its place: as root, over /dev/full."""
    import os

    story = tmp_path / "story.jsonl"
    story.write_text("".join(json.dumps(event) + "\n" for event in factory.story(5)))
    assert cli(["publish", str(story)], env, tmp_path).returncode == 0
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    reader = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)  # held open: the export's open won't block
    try:
        done = cli(["export", "-o", str(pipe)], env, tmp_path)
        assert done.returncode == 0, done.stderr
        assert pipe.is_fifo()
        assert os.read(reader, 1 << 16).count(b"\n") == 5  # the 5 events, through the pipe
    finally:
        os.close(reader)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe", "story.jsonl"]


FULL = Path("/dev/full")


@pytest.mark.skipif(not FULL.is_char_device(), reason="no /dev/full here")
@pytest.mark.parametrize("args", [
    ["show", "entity", "org-1"], ["show", "entity", "org-1", "--format", "json"],
    ["show", "entity", "org-1", "--format", "ics"], ["asyncapi"],
])
def test_output_onto_a_full_disk_is_a_clean_error(
    args: list[str], env: dict[str, str], tmp_path: Path
) -> None:
    with FULL.open("w") as full:
        done = subprocess.run([sys.executable, "-m", "services.cli", *args], env=env,
                              cwd=tmp_path, stdout=full, stderr=subprocess.PIPE, text=True,
                              timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert "stopped: [Errno 28] No space left on device" in done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr


@pytest.mark.parametrize("args", [["api", "--port", "99999"], ["serve", "--port", "-1"]])
def test_a_port_out_of_range_is_a_usage_error(
    args: list[str], env: dict[str, str], tmp_path: Path
) -> None:
    """Not bound modulo 65536 (99999 was port 34463)."""
    done = cli(args, env, tmp_path)
    assert done.returncode == 2 and "--port" in done.stderr, done.stderr


def test_a_port_in_use_is_exit_2(env: dict[str, str], tmp_path: Path) -> None:
    """uvicorn's own status (3) is none the README lists: this is a configuration error."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        done = cli(["api", "--port", str(taken.getsockname()[1])], env, tmp_path)
    assert done.returncode == 2, done.stderr
    assert "cannot serve on 127.0.0.1" in done.stderr and "Traceback" not in done.stderr


def test_a_document_nested_too_deeply_is_not_valid_json(
    env: dict[str, str], tmp_path: Path
) -> None:
    """msgspec raises RecursionError, a RuntimeError, which read as the service refusing."""
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    done = cli(["publish", str(path)], env, tmp_path)
    assert done.returncode == 2 and "is not valid JSON" in done.stderr, done.stderr


def test_a_digest_that_cannot_be_written_is_a_clean_error(
    env: dict[str, str], tmp_path: Path
) -> None:
    done = cli(["audit", "digest", "-o", str(tmp_path / "no-such-dir" / "d.json")], env,
               tmp_path)
    assert done.returncode == 2 and "cannot write" in done.stderr
    assert "Traceback" not in done.stderr


async def test_a_byte_order_mark_is_no_part_of_the_first_event(
    services: Services, redis_url: str, tmp_path: Path
) -> None:
    events = [{"specversion": "1.0", "id": f"bom-{i}", "source": "urn:test", "subject": "lg",
               "type": "x-test.noted", "occurred": "2024", "data": {}} for i in range(2)]
    path = tmp_path / "bom.jsonl"
    path.write_text("\ufeff" + "\n".join(json.dumps(e) for e in events) + "\n")
    done = await asyncio.to_thread(cli_import, redis_url, str(path))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["appended"] == 2


async def test_a_companies_file_not_in_utf_8_exits_2_appending_nothing(
    services: Services, redis_url: str, tmp_path: Path
) -> None:
    companies = tmp_path / "companies.csv"
    companies.write_bytes("Acquisitions ID,City (HQ)\nx,Liège\n".encode("latin-1"))
    done = await asyncio.to_thread(
        cli_import, redis_url, "--format", "acquisitions", "--companies", str(companies),
        str(FIXTURES / "acquisitions" / "sample_acquisitions.csv"))
    assert done.returncode == 2 and "cannot read the companies file" in done.stderr
    assert "Traceback" not in done.stderr
    assert await services.log.total() == 0


async def test_rejections_that_cannot_be_written_go_to_stderr(
    services: Services, redis_url: str, tmp_path: Path
) -> None:
    done = await asyncio.to_thread(
        cli_import, redis_url, "--format", "csv", str(FIXTURES / "csv" / "sample.csv"),
        "--rejects", str(tmp_path / "no-such-directory" / "rejects.jsonl"))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert json.loads(done.stdout) == {"appended": 6, "duplicate": 0, "rejected": 6}
    assert "cannot write the rejections" in done.stderr
    written = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert [r["line"] for r in written] == [9, 10, 11, 12, 13, 14]


def test_an_unpark_whose_replay_helper_fails_exits_2(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import services.parking
    from services.audit.parallel import HelperFailed
    from services.cli.main import app

    async def helper_killed(built: object) -> None:
        raise HelperFailed("helper 1 exited with -9")

    monkeypatch.setattr(services.parking, "unpark_all", helper_killed)
    done = CliRunner().invoke(app, ["audit", "unpark"], env={"TIMELINE_REDIS_URL": redis_url})
    assert done.exit_code == 2, done.output
    assert "the retry failed, nothing was changed" in done.output
