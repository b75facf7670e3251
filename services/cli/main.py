"""The `timeline` command line (DESIGN 5). Thin: parse, call services, print."""

from __future__ import annotations

import io
import ipaddress
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.progress import Progress
from rich.table import Table
from rich.text import Text

from events.codec import UNREADABLE
from services import bootstrap, config, subprocesses
from services.cli import audit as audit_commands
from services.cli import parked as parked_commands
from services.cli.common import (
    as_typed,
    console,
    err,
    json_encoder,
    load_settings,
    plain,
    run,
    say_stopped_by,
)
from services.importers.common import BadFile
from services.publishing import JsonRecords, Rejection, Tally, publish_all, read_events
from services.redis.embedded import die_with_parent

app = typer.Typer(
    help="Event-sourced timelines of business events.", no_args_is_help=True,
    rich_markup_mode="rich",
    epilog="Examples:\n"
    "  [bold]timeline serve --demo[/bold]\n"
    "  [bold]timeline show entity lg-ai-research[/bold]\n"
    "  [bold]timeline audit verify[/bold]\n\n"
    "Exit status: 0 ok, 1 the command found a problem (rejected events, a failed "
    "verification), 2 usage, configuration or input error, 130 interrupted.")




def _check_bind(host: str, settings: config.Settings) -> None:
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    from services.auth.tokens import TokenConfigError, load_tokens

    try:
        tokens = load_tokens(settings.tokens, settings.tokens_file)
    except TokenConfigError as exc:
        err.print(f"[red]token configuration error:[/red] {plain(exc)}")
        raise typer.Exit(2) from None
    if not loopback and not tokens:
        err.print(f"[red]refusing to bind {plain(host)}:[/red] no tokens are configured, so "
                  "auth is off; bind a loopback address or set TIMELINE_TOKENS")
        raise typer.Exit(2)


@app.command("config")
def show_config() -> None:
    """Print the effective configuration, secrets masked.

    Examples:
      [bold]timeline config[/bold]
    """
    console.print_json(json_encoder.encode(load_settings().masked()).decode())


async def _serve_http(built: bootstrap.Services, host: str, port: int) -> None:
    from services.http.app import create_app
    from services.http.server import GracefulServer

    server = GracefulServer(create_app(built.settings, built), host, port)
    try:
        await server.serve()
    except SystemExit as exc:  # uvicorn's own exit when it cannot start (its status 3)
        if not exc.code:
            raise
        err.print(f"[red]cannot serve on {plain(host)}:{port}[/red] (the reason is logged "
                  "above: the port taken, say)")
        raise typer.Exit(2) from None


def _spawn_workers(count: int, url: str) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "TIMELINE_REDIS_URL": url}
    return [subprocess.Popen([sys.executable, "-m", "services.cli", "worker"], env=env,
                             stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
            for _ in range(count)]


def _stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:  # all at once: each then finishes its batch in parallel
        worker.send_signal(signal.SIGTERM)
    for worker in workers:
        subprocesses.stop(worker, grace=15)


@app.command()
def serve(
    host: Annotated[Optional[str], typer.Option(help="Address to bind")] = None,  # noqa: UP045
    port: Annotated[Optional[int], typer.Option(  # noqa: UP045
        help="Port to bind", min=0, max=65535)] = None,
    workers: Annotated[int, typer.Option(help="Projection worker processes", min=0)] = 1,
    demo: Annotated[bool, typer.Option(help="Load the demo story if the log is empty")] = False,
) -> None:
    """Everything in one process group: server, HTTP API and projection workers.

    Examples:
      [bold]timeline serve --demo[/bold]
      [bold]timeline serve --port 8080 --workers 2[/bold]
    """
    settings = load_settings()
    host, port = host or settings.host, settings.port if port is None else port
    _check_bind(host, settings)

    async def main() -> None:
        async with bootstrap.services(settings) as built:
            if demo:
                from services.demo import load_demo

                loaded = await load_demo(built)
                err.print(f"demo: {loaded} events appended")
            children = _spawn_workers(workers, built.url)
            try:
                await _serve_http(built, host, port)
            finally:
                _stop_workers(children)

    run(main())


@app.command()
def api(
    host: Annotated[Optional[str], typer.Option(help="Address to bind")] = None,  # noqa: UP045
    port: Annotated[Optional[int], typer.Option(  # noqa: UP045
        help="Port to bind", min=0, max=65535)] = None,
) -> None:
    """The HTTP API alone.

    Examples:
      [bold]timeline api --host 127.0.0.1 --port 8001[/bold]
    """
    settings = load_settings()
    host, port = host or settings.host, settings.port if port is None else port
    _check_bind(host, settings)

    async def main() -> None:
        async with bootstrap.services(settings) as built:
            await _serve_http(built, host, port)

    run(main())


@app.command()
def worker() -> None:
    """Ingest consumer + projection worker: takes its share of partitions and projects them.

    Examples:
      [bold]timeline worker[/bold]
      [bold]TIMELINE_REDIS_URL=redis://valkey:6379/0 timeline worker[/bold]
    """
    settings = load_settings()

    async def main() -> None:
        from services.ingest.worker import run_worker

        async with bootstrap.services(settings) as built:
            await run_worker(built)

    run(main())


def _read_stdin() -> str:
    """stdin as strict UTF-8, as a file is read: in UTF-8 mode (a C locale, say) its
    own text layer lets invalid bytes through as lone surrogates, which no JSON
    decoder takes."""
    wrapper = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8")
    try:
        return wrapper.read()
    finally:
        wrapper.detach()  # sys.stdin keeps its buffer


def _publish_file(path: str, rejects_path: Path | None, progress: bool,
                  parse: Any = read_events, fmt: str = "jsonl") -> Tally:
    settings = load_settings()
    try:
        text = _read_stdin() if path == "-" else Path(path).read_text(encoding="utf-8")
        text = text.removeprefix("\ufeff")  # a byte order mark is no part of the first event
    except (OSError, UnicodeDecodeError) as exc:
        err.print(f"[red]cannot read {plain(path)}:[/red] {plain(exc)}")
        raise typer.Exit(2) from None
    rejections: list[Rejection] = []
    tally = Tally()
    rejects = rejects_path or Path(f"{'stdin' if path == '-' else path}.rejects.jsonl")

    async def main() -> Tally:
        async with bootstrap.services(settings) as built:
            items = parse(text)
            # JSON records are decoded as they are appended (they raise nothing once
            # made); other formats are read whole first, so that a file broken
            # part-way (a CSV error) appends nothing.
            if not isinstance(items, JsonRecords):
                items = list(items)
            with Progress(console=err, disable=not progress, transient=True) as bar:
                task = bar.add_task("appending", total=len(items))
                return await publish_all(built.appender, items, "cli", rejections.append,
                                         lambda n: bar.advance(task, n), tally)

    try:
        tally = run(main(), raises=UNREADABLE)  # RecursionError is a RuntimeError too
    except typer.Exit:
        if tally.appended or tally.duplicate or tally.rejected:  # cut off part-way
            _report_partial(tally, rejections, rejects)
        raise
    except UNREADABLE as exc:
        err.print(f"[red]{plain(path)} is not valid JSON:[/red] {plain(exc)}")
        raise typer.Exit(2) from None
    except BadFile as exc:
        err.print(f"[red]cannot import {plain(path)} as {plain(fmt)}:[/red] {plain(exc)} "
                  "(nothing was appended)")
        raise typer.Exit(2) from None
    if rejections:
        _write_rejections(rejects, rejections)
    else:
        _remove_stale_rejections(rejects)
    console.print_json(json_encoder.encode(tally).decode())
    return tally


def _remove_stale_rejections(target: Path) -> None:
    """The rejections file describes the last run: one that rejected nothing removes
    an earlier run's, which would otherwise read as this run's."""
    try:
        target.unlink()
    except FileNotFoundError:
        return
    except OSError as exc:
        err.print(f"[yellow]cannot remove an earlier run's rejections, {plain(target)}:"
                  f"[/yellow] {plain(exc)}")
        return
    err.print(f"nothing rejected: removed an earlier run's rejections, {plain(target)}")


def _report_partial(tally: Tally, rejections: list[Rejection], rejects: Path) -> None:
    """What a run the server cut off had done: sending the file again is safe, what was
    appended comes back `duplicate`."""
    if rejections:
        _write_rejections(rejects, rejections)
    console.print_json(json_encoder.encode(tally).decode())
    err.print(f"[red]stopped part-way:[/red] {tally.appended} appended before the server "
              "failed; send the file again to append the rest (what is in comes back "
              "duplicate)")


def _write_rejections(target: Path, rejections: list[Rejection]) -> None:
    lines = b"".join(json_encoder.encode(r) + b"\n" for r in rejections)
    try:
        target.write_bytes(lines)
    except OSError as exc:  # the events are appended by now: say why the rest were not
        err.print(f"[red]cannot write the rejections to {plain(target)}:[/red] {plain(exc)}; "
                  "they follow")
        sys.stderr.buffer.write(lines)
        sys.stderr.flush()
        return
    err.print(f"rejections with reasons: {plain(target)}")


@app.command()
def publish(
    file: Annotated[str, typer.Argument(help="JSON or JSONL file, or - for stdin")],
) -> None:
    """Publish events from a file, with a progress bar: exit 1 if any was rejected.

    Examples:
      [bold]timeline publish events.jsonl[/bold]
      [bold]timeline publish - < events.jsonl[/bold]
    """
    if _publish_file(file, None, progress=True).rejected:
        raise typer.Exit(1)


@app.command("import")
def import_(
    file: Annotated[str, typer.Argument(help="File to import")],
    format: Annotated[str, typer.Option(  # noqa: A002
        "--format", help="jsonl, csv, gdelt, acquisitions or timelinejs")] = "jsonl",
    rejects: Annotated[Optional[Path], typer.Option(help="Where to write rejections")] = None,  # noqa: UP045
    companies: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        help="acquisitions: the acquired-companies CSV (default: the one beside FILE)")] = None,
) -> None:
    """Bulk import with a progress bar; counts appended, duplicates and rejected.

    Exit 1 if any record was rejected (reasons in the rejects file).

    Examples:
      [bold]timeline import --format gdelt gdelt2_20191024143000.export.tsv[/bold]
      [bold]timeline import --format acquisitions acquisitions.csv --companies companies.csv[/bold]
      [bold]timeline import --format csv events.csv --rejects rejects.jsonl[/bold]
    """
    from services.importers.registry import FORMATS, parser

    if format not in FORMATS:
        err.print(f"[red]unsupported format {plain(repr(format))}:[/red] "
                  f"one of {', '.join(FORMATS)}")
        raise typer.Exit(2)
    try:
        parse = parser(format, file, companies)
    except (OSError, UnicodeDecodeError) as exc:
        err.print(f"[red]cannot read the companies file:[/red] {plain(exc)}")
        raise typer.Exit(2) from None
    if _publish_file(file, rejects, progress=True, parse=parse, fmt=format).rejected:
        raise typer.Exit(1)


def _show_export(
    settings: config.Settings, fmt: str, kind: str, keys: list[str], key: str, query: Any,
    cursor: str | None,
) -> None:
    """The whole timeline (up to the export cap) in an export format, as bytes on stdout."""
    from services.exports.formats import render
    from services.exports.pages import EXPORT_CAP, collect, title_name

    async def main() -> tuple[Any, str | None]:
        async with bootstrap.services(settings) as built:
            collected = await collect(built.read_model, query, cursor)
            named = await title_name(built.read_model, kind, keys, query, collected.entries)
            return collected, named

    collected, named = _read(main())
    sys.stdout.buffer.write(render(fmt, kind, key, collected.entries, named,
                                   more=collected.next_cursor is not None))
    sys.stdout.buffer.flush()
    if collected.next_cursor:
        err.print(f"[yellow]stopped at the export cap of {EXPORT_CAP:,} entries;[/yellow] "
                  f"the rest: the same command with --cursor {collected.next_cursor} "
                  "(or narrow with --from/--to)", soft_wrap=True)  # the cursor on one line


def _read(coro: Any) -> Any:
    """`run`, and a cursor this server did not issue for this query is a usage error."""
    from projections.store import BadCursor

    try:
        return run(coro, raises=(BadCursor,))
    except BadCursor as exc:
        err.print(f"[red]--cursor: {plain(exc)}[/red]")
        raise typer.Exit(2) from None


@app.command()
def show(
    kind: Annotated[str, typer.Argument(help="entity, pair, place, topic or all")],
    keys: Annotated[Optional[list[str]], typer.Argument(help="the timeline's key(s)")] = None,  # noqa: UP045
    from_: Annotated[Optional[str], typer.Option("--from", help="partial date")] = None,  # noqa: UP045
    to: Annotated[Optional[str], typer.Option(help="partial date")] = None,  # noqa: UP045
    type_: Annotated[Optional[list[str]], typer.Option("--type", help="event type")] = None,  # noqa: UP045
    with_: Annotated[Optional[str], typer.Option("--with", help="entity also involved")] = None,  # noqa: UP045
    limit: Annotated[int, typer.Option(help="at most this many entries")] = 100,
    order: Annotated[str, typer.Option(help="asc or desc")] = "asc",
    include_retracted: Annotated[bool, typer.Option(help="show retracted entries")] = False,
    as_of: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--as-of", help="RFC 3339: the timeline as it was known then")] = None,
    cursor: Annotated[Optional[str], typer.Option(  # noqa: UP045
        help="start after the page (or export) that gave this cursor")] = None,
    format: Annotated[str, typer.Option(  # noqa: A002
        "--format", help="table or json (one page of --limit), or timelinejs, ics or csv "
        "(the whole timeline, up to 10,000 entries, on stdout)")] = "table",
) -> None:
    """Show a timeline: a table by default, JSON or an export format on request.

    Examples:
      [bold]timeline show entity lg-ai-research --from 2023 --to 2024-06[/bold]
      [bold]timeline show pair jax lg-ai-research --format csv > pair.csv[/bold]
      [bold]timeline show all --type mou.signed --order desc --limit 20[/bold]
      [bold]timeline show topic ai --as-of 2024-03-01T00:00:00Z --include-retracted[/bold]
      [bold]timeline show place PL --format json[/bold]
    """
    from services.exports.formats import EXPORTS
    from services.queries import BadQuery, parse_params, timeline_name, to_query

    settings = load_settings()
    expected = {"entity": 1, "pair": 2, "place": 1, "topic": 1, "all": 0}
    keys = keys or []
    formats = ("table", "json", *EXPORTS)
    if kind not in expected or len(keys) != expected[kind] or format not in formats:
        err.print(f"[red]usage:[/red] show entity|pair|place|topic|all KEY.. "
                  f"(a {plain(kind)} timeline takes {expected.get(kind, '?')} key(s)); "
                  f"--format {'|'.join(formats)}")
        raise typer.Exit(2)
    raw = {"from": from_, "to": to, "type": type_ or [], "with": with_, "limit": str(limit),
           "order": order, "include_retracted": str(include_retracted), "as_of": as_of,
           "cursor": cursor}
    try:
        params = parse_params(raw)
        name, key = timeline_name(kind, keys)
    except BadQuery as exc:
        err.print(f"[red]{plain(as_typed(exc.errors))}[/red]")
        raise typer.Exit(2) from None
    if format in EXPORTS:
        _show_export(settings, format, kind, keys, key, to_query(name, params), params.cursor)
        return

    async def main() -> Any:
        async with bootstrap.services(settings) as built:
            return await built.read_model.page(to_query(name, params), params.limit,
                                               params.cursor)

    page = _read(main())
    if format == "json":
        console.print_json(json_encoder.encode({"timeline": {"kind": kind, "key": key},
                                         "entries": page.entries,
                                         "next_cursor": page.next_cursor}).decode())
        return
    console.print(_entries_table(f"{plain(kind)} {plain(key)}", page.entries,
                                 page.next_cursor is not None))
    if page.next_cursor:  # soft_wrap: the cursor stays on one line, to copy whole
        console.print(f"next page: --cursor {page.next_cursor}", soft_wrap=True,
                      markup=False, highlight=False)


_STATUS_STYLE = {"active": "green", "corrected": "yellow", "retracted": "red"}


def _entries_table(title: str, entries: list[Any], more: bool) -> Table:
    """One row per entry. Date, type and status stay on one line so they line up down
    the page; the headline takes the rest of the width, its entities on a dim line under
    it (a column of their own leaves the headline too narrow on an 80-column terminal)."""
    count = f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}"
    table = Table(title=title, expand=True, caption=(
        f"{count}; more follow (next page: --cursor below)" if more else count))
    table.add_column("occurred", no_wrap=True, style="cyan")
    table.add_column("type", no_wrap=True)
    table.add_column("headline / entities", ratio=1, min_width=20)
    table.add_column("status", no_wrap=True)
    for entry in entries:
        # Text, not str: a headline or name with [brackets] must print as written, not
        # be read as rich markup.
        cell = Text(entry.headline)
        if entry.entities:
            cell.append("\n" + " · ".join(e.name or e.id for e in entry.entities), style="dim")
        status = entry.status if entry.version == 1 else f"{entry.status} v{entry.version}"
        table.add_row(Text(entry.occurred), Text(entry.type), cell,
                      Text(status, style=_STATUS_STYLE.get(entry.status, "")))
    return table


@app.command()
def tail(
    entity: Annotated[Optional[str], typer.Option(help="entries involving this entity")] = None,  # noqa: UP045
    topic: Annotated[Optional[str], typer.Option(help="entries with this topic")] = None,  # noqa: UP045
    json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
) -> None:
    """Follow new timeline entries as the projection applies them (Ctrl-C stops).

    Examples:
      [bold]timeline tail --entity lg-ai-research[/bold]
      [bold]timeline tail --topic ai --json[/bold]
    """
    from services.cli.tail import bad_filters, follow

    if problem := bad_filters(entity, topic):
        err.print(f"[red]{plain(problem)}[/red]")
        raise typer.Exit(2)
    if run(follow(load_settings(), entity, topic, json, console)):
        raise typer.Exit(130)


@app.command()
def asyncapi() -> None:
    """Print the AsyncAPI 3 document of the ingest stream, the partition logs and the live feed.

    Examples:
      [bold]timeline asyncapi > asyncapi.json[/bold]
    """
    from services.asyncapi import document

    typer.echo(json_encoder.encode(document()).decode())


audit_commands.register(app)  # `audit ...`, `export`, `restore`
parked_commands.register(audit_commands.app)  # `audit parked`, `audit unpark`


def main() -> None:
    try:
        app()
    except OSError as exc:  # writing stdout outside `run`: /dev/full, a disk filled up
        # What is left in stdout's buffer would fail again at exit, with a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        say_stopped_by(exc)
        sys.exit(2)
