"""`timeline audit ...` (verify, digest, replay, history) and the top-level
`timeline export` / `timeline restore` (DESIGN 5).

Exit status: 0 when everything checks, 1 when verification or a comparison
fails (or a digest or restore file is refused), 2 when the command could not
run at all (configuration, unreadable file, server, a replay already running).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import msgspec
import typer
from rich.progress import Progress
from rich.table import Table
from rich.text import Text

from events.codec import UNREADABLE
from services import bootstrap
from services.audit import digest as digests
from services.audit.export import FORMATS, RestoreRefused, export, restore
from services.audit.verify import Report, verify
from services.bootstrap import helpers_for
from services.cli.common import (
    as_typed,
    console,
    err,
    json_encoder,
    load_settings,
    plain,
    run,
)
from services.log.reader import BadHead

if TYPE_CHECKING:  # imported where used: replay brings FastStream, which no other command needs
    from services.audit.chain import Problem
    from services.audit.replay import ReplayReport

app = typer.Typer(help="Prove the log intact, rebuild and compare projections, show history.",
                  no_args_is_help=True, rich_markup_mode="rich",
                  epilog="Examples:\n"
                  "  [bold]timeline audit verify[/bold]\n"
                  "  [bold]timeline audit digest -o digest.json[/bold]\n"
                  "  [bold]timeline audit replay --promote[/bold]")




def _print_json(value: Any) -> None:
    typer.echo(json_encoder.encode(value).decode())


def _read_digest(path: Path, key: str | None) -> tuple[digests.Digest, str]:
    try:
        raw = msgspec.json.decode(path.read_bytes())
    except (OSError, *UNREADABLE) as exc:
        err.print(f"[red]cannot read the digest {plain(path)}:[/red] {plain(exc)}")
        raise typer.Exit(2) from None
    try:
        digest = digests.parse(raw)
        return digest, digests.check_signature(digest, key)
    except digests.BadDigest as exc:
        err.print(f"[red]digest refused[/red] ({plain(exc.path)}): {plain(exc.message)}")
        raise typer.Exit(1) from None


def _problem_line(problem: Problem) -> str:
    where = "log" if problem.partition is None else f"partition {problem.partition}"
    at = "" if problem.sequence is None else f" sequence {problem.sequence}"
    return f"[red]{problem.kind}[/red] {where}{at}: {plain(problem.message)}"


def _show_report(report: Report) -> None:
    table = Table(title="log verification")
    for column in ("partition", "length", "head", "ok"):
        table.add_column(column)
    for part in report.partitions:
        table.add_row(str(part.partition), str(part.length), part.head[:16] + "…",
                      "yes" if part.ok else "[red]NO[/red]")
    console.print(table)
    problems = [p for part in report.partitions for p in part.problems] + report.problems
    for problem in problems:
        console.print(_problem_line(problem))
    if report.digest:
        console.print(f"digest issued {report.digest.issued_at}, signature "
                      f"{report.digest.signature}")
    if report.ok:
        console.print(f"[green]verified[/green]: {report.entries} entries in "
                      f"{len(report.partitions)} partitions ({report.seconds}s)")
    else:
        console.print(f"[red]verification failed[/red]: {len(problems)} problem(s)")


@app.command("verify")
def verify_command(
    digest: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--digest", help="a saved digest (JSON) the log must still extend")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Recompute every partition's hash chain from the raw log; exit 1 on any problem.

    Examples:
      [bold]timeline audit verify[/bold]
      [bold]timeline audit verify --digest digest-2024-03-01.json[/bold]
      [bold]timeline audit verify --json > report.json[/bold]
    """
    settings = load_settings()
    saved = _read_digest(digest, settings.digest_key) if digest else None

    async def main() -> Report:
        async with bootstrap.services(settings) as built:
            # verify() checks the partitions concurrently and reports no progress of its
            # own, so a spinner (not a bar) shows it is working.
            with err.status("verifying the log"):
                if saved:
                    return await verify(built.client, saved[0], saved[1])
                return await verify(built.client)

    report = run(main())
    if as_json:
        _print_json(report)
    else:
        _show_report(report)
    if not report.ok:
        raise typer.Exit(1)


@app.command("digest")
def digest_command(
    output: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--output", "-o", help="write the digest here instead of stdout")] = None,
) -> None:
    """Print a digest of the log: per partition its last sequence and chain head.

    Signed with TIMELINE_DIGEST_KEY when set. Keep it: `audit verify --digest FILE`
    proves later that the log still extends it.

    Examples:
      [bold]timeline audit digest -o digest-2024-03-01.json[/bold]
      [bold]TIMELINE_DIGEST_KEY=... timeline audit digest[/bold]
    """
    settings = load_settings()

    async def main() -> digests.Digest:
        async with bootstrap.services(settings) as built:
            return await digests.build(built.client, built.partitions, settings.digest_key)

    try:
        body = json_encoder.encode(run(main(), raises=(BadHead, digests.RestoreUnfinished)))
    except (BadHead, digests.RestoreUnfinished) as exc:  # a digest would vouch for it
        err.print(f"[red]no digest issued:[/red] {plain(exc)} (`timeline audit verify` "
                  "reports what the log holds)")
        raise typer.Exit(1) from None
    if output:
        try:
            output.write_bytes(body + b"\n")
        except OSError as exc:
            err.print(f"[red]cannot write {plain(output)}:[/red] {plain(exc)}")
            raise typer.Exit(2) from None
        err.print(f"digest written to {plain(output)}")
    else:
        typer.echo(body.decode())


def _show_replay(report: ReplayReport) -> None:
    if report.live_behind:
        console.print(f"[yellow]the live projection had not caught up with the log[/yellow]: "
                      f"{report.live_behind}")
    for diff in report.differences:
        what = f"{diff.scope} {diff.problem}: {diff.key}"
        if diff.fields:
            what += " (" + ", ".join(sorted(diff.fields)) + ")"
        console.print(f"[red]{plain(what)}[/red]")
    if report.differences_total > len(report.differences):
        console.print(f"… and {report.differences_total - len(report.differences)} more")
    verdict = "[green]identical[/green]" if report.identical else (
        f"[red]{report.differences_total} difference(s)[/red]")
    console.print(f"replayed {report.events} events in {report.seconds}s: {verdict}"
                  + (f"; promoted, reads now use {report.namespace}" if report.promoted else ""))


@app.command("replay")
def replay_command(
    promote: Annotated[bool, typer.Option(
        help="switch reads to the rebuilt copy atomically, then drop the old one")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Rebuild the projections from the log into a shadow copy and compare with the live one.

    Exit 1 on differences, even when --promote repaired them by switching to the rebuild.

    Examples:
      [bold]timeline audit replay[/bold]
      [bold]timeline audit replay --promote --json[/bold]
    """
    from services.audit.parallel import HelperFailed
    from services.audit.replay import ReplayError, ReplayRunning, replay

    settings = load_settings()

    async def main() -> ReplayReport:
        async with bootstrap.services(settings) as built:
            with Progress(console=err, transient=True, disable=as_json) as bar:
                task = bar.add_task("replaying", total=None)
                return await replay(
                    built.client, built.partitions, promote=promote,
                    on_total=lambda n: bar.update(task, total=n),
                    on_progress=lambda n: bar.advance(task, n),
                    helpers=helpers_for(built))

    try:
        report = run(main(), raises=(ReplayRunning, ReplayError, HelperFailed))
    except ReplayRunning as exc:
        err.print(f"[red]refused:[/red] {plain(exc)}")
        raise typer.Exit(2) from None
    except ReplayError as exc:
        err.print(f"[red]the log cannot be replayed:[/red] {plain(exc)}")
        raise typer.Exit(1) from None
    except HelperFailed as exc:  # it lost the server, or was killed
        err.print(f"[red]the replay failed, nothing was changed:[/red] {plain(exc)}")
        raise typer.Exit(2) from None
    if as_json:
        _print_json(report)
    else:
        _show_replay(report)
    if not report.identical:
        raise typer.Exit(1)


@app.command("history")
def history_command(
    source: Annotated[str, typer.Argument(help="the event's source")],
    ident: Annotated[str, typer.Argument(metavar="ID", help="the event's id")],
    as_of: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--as-of", help="RFC 3339: as it was known then")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="entry and history as JSON")] = False,
) -> None:
    """Every stored version of one event: original, corrections, retraction.

    Each with recordedtime, recordedby, position and reason. Exit 1 if there is no such event.

    Examples:
      [bold]timeline audit history urn:timeline:demo:korean-business-daily demo-mou-lgai-jax[/bold]
    """
    from events.errors import EventValidationError
    from services.queries import EventView, parse_as_of

    settings = load_settings()
    try:
        when = parse_as_of(as_of) if as_of else None
    except EventValidationError as exc:
        err.print(f"[red]{plain(as_typed(exc.errors))}[/red]")
        raise typer.Exit(2) from None

    async def main() -> Any:
        async with bootstrap.services(settings) as built:
            return await built.read_model.entry(source, ident, as_of=when)

    found = run(main())
    if found is None:
        err.print(f"[red]no event {plain(repr(ident))} from {plain(repr(source))}"
                  f"{plain(' as of ' + when if when else '')}[/red]")
        raise typer.Exit(1)
    if as_json:
        _print_json(EventView(*found))
        return
    entry, history = found
    console.print(f"{plain(entry.headline)} — {plain(entry.occurred)}, {entry.status}, "
                  f"version {entry.version}")
    table = Table()
    # Times and positions whole, however narrow the terminal: a cut one ("05:43:0…")
    # is no evidence. The principal and the reason wrap instead.
    for column in ("recordedtime", "recordedby", "position", "type", "occurred", "reason"):
        whole = column not in ("recordedby", "reason")
        table.add_column(column, no_wrap=whole, min_width=27 if column == "recordedtime" else None)
    for version in history:  # Text: a reason or a principal may hold `[`, never markup
        table.add_row(*(Text(cell) for cell in (
            version.recordedtime, version.recordedby, version.position, version.type,
            version.occurred or "", version.reason or "")))
    console.print(table)


def _partial_for(output: Path | None) -> Path | None:
    """Where an export to `output` is written before it is renamed over it: an export that
    cannot run (no server) or is cut off then leaves an earlier good file as it was.
    Beside the file a symlink names, which stays a symlink. None for a device or a pipe
    (`-o /dev/stdout`), written directly: a rename would put a plain file in its place."""
    if output is None or (output.exists() and not output.is_file()):
        return None
    target = output.resolve()
    return target.with_name(target.name + ".partial")


def export_command(
    format: Annotated[str, typer.Option("--format", help="cloudevents-jsonl")] = FORMATS[0],  # noqa: A002
    output: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--output", "-o", help="write here instead of stdout")] = None,
) -> None:
    """Write the whole log as CloudEvents JSON lines, hashes included.

    In partition-sequence order, every stored attribute. Exit 1 if the chain has
    problems (listed on stderr).

    Examples:
      [bold]timeline export -o log.jsonl[/bold]
      [bold]timeline export --format cloudevents-jsonl > log.jsonl[/bold]
    """
    if format not in FORMATS:
        err.print(f"[red]unsupported format {plain(repr(format))}:[/red] "
                  f"one of {', '.join(FORMATS)}")
        raise typer.Exit(2)
    settings = load_settings()
    partial = _partial_for(output)
    target = partial.with_name(partial.name.removesuffix(".partial")) if partial else output
    try:
        handle = (partial or target).open("wb") if target else sys.stdout.buffer
    except OSError as exc:
        err.print(f"[red]cannot write {plain(output)}:[/red] {plain(exc)}")
        raise typer.Exit(2) from None

    async def main() -> Any:
        async with bootstrap.services(settings) as built:
            # On stderr, so the bar never mixes into an export written to stdout.
            with Progress(console=err, transient=True) as bar:
                task = bar.add_task("exporting", total=None)
                return await export(built.client, built.partitions, handle.write,
                                    on_progress=lambda n: bar.advance(task, n))

    try:
        summary = run(main())
    except BaseException:
        if partial:
            handle.close()
            partial.unlink(missing_ok=True)
        raise
    if target and partial:
        handle.close()
        try:
            partial.replace(target)
        except OSError as exc:  # a directory there, say: no stray copy of the log left
            partial.unlink(missing_ok=True)
            err.print(f"[red]cannot write {plain(output)}:[/red] {plain(exc)}")
            raise typer.Exit(2) from None
    elif target:
        handle.close()
    else:
        handle.flush()
    for problem in summary.problems:
        err.print(_problem_line(problem))
    err.print(f"exported {summary.events} entries" + (f" to {plain(output)}" if output else ""))
    if summary.problems:
        raise typer.Exit(1)


def restore_command(
    file: Annotated[Path, typer.Argument(help="an export (cloudevents-jsonl)")],
) -> None:
    """Load an export into an empty log, re-verifying every hash first.

    A file with any break is refused and nothing is written. Projection workers
    then rebuild the timelines from the restored log. A restore that stopped
    half-way resumes when run again with the same file. Exit 1 if refused.

    Examples:
      [bold]timeline restore log.jsonl[/bold]
    """
    settings = load_settings()
    if not file.is_file():
        err.print(f"[red]cannot read {plain(file)}[/red]")
        raise typer.Exit(2)

    async def main() -> Any:
        async with bootstrap.services(settings) as built:
            with Progress(console=err, transient=True) as bar:
                task = bar.add_task("restoring", total=None)
                return await restore(built.client, file, built.partitions,
                                     settings.partitions is not None,
                                     on_progress=lambda n: bar.advance(task, n))

    try:
        restored = run(main())
    except RestoreRefused as exc:
        err.print(f"[red]restore refused:[/red] {plain(exc)}")
        raise typer.Exit(1) from None
    _print_json({"events": restored.events, "resumed": restored.resumed,
                 "partitions": restored.partitions,
                 "heads": {str(p): {"sequence": s, "head": h}
                           for p, (s, h) in sorted(restored.heads.items())}})


def register(root: typer.Typer) -> None:
    """Attach `audit` and the top-level `export` / `restore` to the main app."""
    root.add_typer(app, name="audit")
    root.command("export")(export_command)
    root.command("restore")(restore_command)
