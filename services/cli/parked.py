"""`timeline audit parked` and `timeline audit unpark`: projection entries
whose apply kept failing, and retrying them (services/parking.py)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from services import bootstrap
from services.cli.common import console, err, json_encoder, load_settings, plain, run


def show_parked(
    format: Annotated[str, typer.Option("--format", help="table or json")] = "table",  # noqa: A002
) -> None:
    """List parked projection entries with their errors.

    Examples:
      [bold]timeline audit parked[/bold]
      [bold]timeline audit parked --format json[/bold]
    """
    from services.parking import list_parked

    if format not in ("table", "json"):
        err.print(f"[red]unsupported format {plain(repr(format))}:[/red] table or json")
        raise typer.Exit(2)
    settings = load_settings()

    async def main() -> Any:
        async with bootstrap.services(settings) as built:
            return await list_parked(built)

    found = run(main())
    if format == "json":
        typer.echo(json_encoder.encode({"parked": found}).decode())
        return
    if not found:
        console.print("no parked entries")
        return
    table = Table(title=f"{len(found)} parked entries")
    for column in ("partition", "sequence", "source", "id", "type", "attempts", "error"):
        table.add_column(column)
    for p in found:
        table.add_row(*(Text(cell) for cell in (  # Text: an error may hold `[`, never markup
            str(p.partition), str(p.sequence), p.source or "?", p.id or "?", p.type or "?",
            str(p.attempts), p.error)))
    console.print(table)


def unpark_command() -> None:
    """Retry every parked entry: rebuild the projection from the log, switch to it,
    clear what now applies. Exit 1 if any entry still fails.

    Examples:
      [bold]timeline audit unpark[/bold]
    """
    from services.audit.parallel import HelperFailed
    from services.audit.replay import ReplayError, ReplayRunning
    from services.parking import unpark_all

    settings = load_settings()

    async def main() -> Any:
        async with bootstrap.services(settings) as built:
            return await unpark_all(built)

    try:
        report = run(main(), raises=(ReplayRunning, ReplayError, HelperFailed))
    except ReplayRunning as exc:
        err.print(f"[red]{plain(exc)}[/red]")
        raise typer.Exit(2) from None
    except ReplayError as exc:
        err.print(f"[red]the log cannot be replayed:[/red] {plain(exc)}")
        raise typer.Exit(1) from None
    except HelperFailed as exc:  # it lost the server, or was killed
        err.print(f"[red]the retry failed, nothing was changed:[/red] {plain(exc)}")
        raise typer.Exit(2) from None
    except typer.Exit:  # a RuntimeError too: `run` has said why
        raise
    except Exception as exc:  # the parked entries fail again: nothing was switched
        err.print(f"[red]the retry failed, entries stay parked:[/red] {type(exc).__name__}: "
                  f"{plain(exc)}")
        raise typer.Exit(1) from None
    typer.echo(json_encoder.encode(report).decode())
    if report.still_parked:
        raise typer.Exit(1)


def register(audit: typer.Typer) -> None:
    audit.command("parked")(show_parked)
    audit.command("unpark")(unpark_command)
