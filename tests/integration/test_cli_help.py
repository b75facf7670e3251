"""CLI polish (issue 6 item 7): every command's help carries examples that really
parse, exit codes follow the table in the README, shell completion is on, and `show`
prints a readable table."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from rich.text import Text

# typer 0.29 vendors click: its command and error classes live here, not in `click`.
from typer._click.core import Command
from typer._click.exceptions import UsageError
from typer.core import TyperGroup
from typer.testing import CliRunner

from services.cli.main import app
from tests.processes import env_for

ROOT = typer.main.get_command(app)
SHELL_OPERATORS = {">", ">>", "<", "|", "&&", ";", "2>"}


def walk(command: Command, path: tuple[str, ...] = ()) -> Iterator[
        tuple[tuple[str, ...], Command]]:
    """The root, every group and every command under them, as registered (so a command
    added later is checked without anyone listing it here)."""
    yield path, command
    if isinstance(command, TyperGroup):
        for name, sub in sorted(command.commands.items()):
            yield from walk(sub, (*path, name))


COMMANDS = dict(walk(ROOT))


def examples(command: Command) -> list[str]:
    """The example command lines in a command's help (docstring and epilog), markup off."""
    text = Text.from_markup(f"{command.help or ''}\n{command.epilog or ''}").plain
    return [line.strip() for line in text.splitlines() if line.strip().startswith("timeline ")]


def check_example(line: str) -> None:
    """Parse an example against the real commands: the words must name a command and the
    options and arguments must be ones it accepts (UsageError otherwise)."""
    words = shlex.split(line)
    for i, word in enumerate(words):
        if word in SHELL_OPERATORS:
            words = words[:i]
            break
    assert words[0] == "timeline", line
    command, rest = ROOT, words[1:]
    while isinstance(command, TyperGroup):
        assert rest and rest[0] in command.commands, f"{line!r}: no command {rest[:1]}"
        command, rest = command.commands[rest[0]], rest[1:]
    command.make_context(command.name or "", list(rest), resilient_parsing=False)


def test_every_command_is_walked() -> None:
    # If the walk broke, the parametrized tests below would silently check nothing.
    expected = {(), ("config",), ("serve",), ("api",), ("worker",), ("publish",), ("import",),
                ("show",), ("tail",), ("asyncapi",), ("export",), ("restore",), ("audit",),
                ("audit", "verify"), ("audit", "digest"), ("audit", "replay"),
                ("audit", "history"), ("audit", "parked"), ("audit", "unpark")}
    assert expected <= set(COMMANDS)


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=lambda p: " ".join(p) or "timeline")
def test_help_has_examples_that_parse(path: tuple[str, ...]) -> None:
    shown = CliRunner().invoke(app, [*path, "--help"], terminal_width=120)
    assert shown.exit_code == 0, shown.output
    assert "Example" in shown.output
    lines = examples(COMMANDS[path])
    assert lines, f"no `timeline ...` example line in the help of {' '.join(path)!r}"
    for line in lines:
        if path:  # a command's examples run that command (the root's may show any)
            assert shlex.split(line)[1:1 + len(path)] == list(path), line
        check_example(line)


# Read-only commands whose examples take values only the command itself checks, run for
# real; the digest first (it writes a file in the working directory), as a verify
# example reads it.
READ_ONLY = [("audit", "digest"), ("show",), ("audit", "verify")]


def test_read_only_examples_run(redis_url: str, tmp_path: Path) -> None:
    # Parsing is not enough for values only the command checks (a partial date, an
    # RFC 3339 instant, a country code): run them against the (empty) test server.
    env = env_for(redis_url, COLUMNS="200")
    ran = 0
    for path in READ_ONLY:
        for line in examples(COMMANDS[path]):
            words = shlex.split(line)
            cut = next((i for i, w in enumerate(words) if w in SHELL_OPERATORS), len(words))
            done = cli(words[1:cut], env, tmp_path)
            assert done.returncode == 0, (line, done.stdout, done.stderr)
            ran += 1
    assert ran >= 8


@pytest.mark.parametrize("line", [
    "timeline shwo entity lg",  # no such command
    "timeline show entity lg --no-such-option",  # no such option
    "timeline show entity lg --limit many",  # not an integer
    "timeline audit",  # a group, not a command
    "timeline audit history only-a-source",  # a required argument missing
])
def test_the_example_check_rejects_wrong_lines(line: str) -> None:
    with pytest.raises((AssertionError, UsageError)):
        check_example(line)


def test_shell_completion_is_offered() -> None:
    options = {opt for param in ROOT.params for opt in param.opts}
    assert {"--install-completion", "--show-completion"} <= options
    # The installed `timeline` script, as a shell calls it: the script it prints registers
    # completion for `timeline`, and the completion protocol answers with real commands.
    timeline = str(Path(sys.executable).parent / "timeline")
    # Detection off: typer then takes the shell named, where it otherwise looks for the
    # shell running it (none under nohup, or a service manager: "Shell  not supported").
    script = subprocess.run([timeline, "--show-completion", "bash"], capture_output=True,
                            text=True, timeout=30, check=False,
                            env={**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert script.returncode == 0, script.stderr
    assert "complete -o default -F _timeline_completion timeline" in script.stdout
    for words, cword, expected in (("timeline aud", "1", "audit"),
                                   ("timeline audit ver", "2", "verify"),
                                   ("timeline show entity x --incl", "4", "--include-retracted")):
        env = {**os.environ, "_TIMELINE_COMPLETE": "complete_bash", "COMP_WORDS": words,
               "COMP_CWORD": cword}
        done = subprocess.run([timeline], env=env, capture_output=True, text=True,
                              timeout=30, check=False)
        assert done.returncode == 0, done.stderr
        assert expected in done.stdout.split(), (words, done.stdout)


@pytest.mark.parametrize(("args", "env"), [
    (["no-such-command"], {}),
    (["show", "entity", "org-1", "--no-such-option"], {}),
    (["config"], {"TIMELINE_PORT": "not-a-port"}),
    (["import", "--format", "xml", "events.xml"], {}),
    (["export", "--format", "xml"], {}),
    (["audit", "parked", "--format", "xml"], {}),
    (["tail", "--entity", "Not An Id"], {}),
])
def test_usage_configuration_and_input_errors_exit_2(args: list[str],
                                                     env: dict[str, str]) -> None:
    # None of these reaches a server: they fail before connecting.
    done = CliRunner().invoke(app, args, env=env)
    assert done.exit_code == 2, done.output


def test_interrupted_exits_130(redis_url: str, tmp_path: Path) -> None:
    tail = subprocess.Popen([sys.executable, "-m", "services.cli", "tail"],
                            env=env_for(redis_url), cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert tail.stderr is not None
        assert "following new entries" in tail.stderr.readline()  # it is in the loop
        tail.send_signal(signal.SIGINT)
        assert tail.wait(15) == 130
    finally:
        if tail.poll() is None:
            tail.kill()
        tail.communicate()


def cli(args: list[str], env: dict[str, str], cwd: Path,
        stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.cli", *args], env=env, cwd=cwd,
                          input=stdin, capture_output=True, text=True, timeout=60, check=False)


def test_show_table_has_entities_and_status_and_prints_markup_literally(
    worker: object, redis_url: str, tmp_path: Path,
) -> None:
    env = env_for(redis_url, COLUMNS="250")
    mou = {"specversion": "1.0", "id": "mou-table", "source": "urn:test:cli-help",
           "type": "mou.signed", "subject": "org-a", "occurred": "2023-12?",
           "data": {"parties": [{"id": "org-a", "name": "Org [bold]A[/bold]", "kind": "org"},
                                {"id": "org-b", "name": "Org B", "kind": "org"}],
                    "headline": "Org A and Org B sign an [red]MOU[/red]"}}
    done = cli(["publish", "-"], env, tmp_path, stdin=json.dumps(mou) + "\n")
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 30
    while True:  # the worker projects asynchronously
        table = cli(["show", "entity", "org-a"], env, tmp_path)
        assert table.returncode == 0, table.stderr
        if "mou.signed" in table.stdout or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    out = table.stdout
    for column in ("occurred", "type", "headline / entities", "status"):
        assert column in out
    assert "2023-12?" in out
    assert "Org A and Org B sign an [red]MOU[/red]" in out  # user text is not rich markup
    assert "Org [bold]A[/bold] · Org B" in out
    assert "active" in out
    assert "1 entry" in out
