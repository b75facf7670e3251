"""What every command shares: its consoles, settings loading, and running a
coroutine with the exit statuses of the README (2 for configuration and
unreachable servers, 130 for Ctrl-C)."""

from __future__ import annotations

from typing import Any

import msgspec
import typer
from redis.exceptions import RedisError, ResponseError
from rich.console import Console
from rich.markup import escape

from services import config
from services import logging as service_logging
from services.redis import loop
from services.redis.embedded import ServerUnavailable

console = Console()
err = Console(stderr=True)


def plain(value: object) -> str:
    """`value` as text inside Rich markup: a path, a key or an error message holding
    `[/x]` would otherwise be read as a tag (a MarkupError, or text lost)."""
    return escape(str(value))
json_encoder = msgspec.json.Encoder()


def load_settings() -> config.Settings:
    """Settings from the environment, with logging configured; exit 2 when they are wrong."""
    try:
        settings = config.load()
    except config.ConfigError as exc:
        err.print(f"[red]configuration error:[/red] {plain(exc)}")
        raise typer.Exit(2) from None
    service_logging.configure(settings.log_format, settings.log_level)
    return settings


def run(coro: Any, raises: tuple[type[Exception], ...] = ()) -> Any:
    """Run `coro`; an unreachable server, or a refusal the caller does not report
    itself, exits 2. `raises`: the errors the caller reports itself."""
    try:
        return loop.run(coro)  # uvloop (services/redis/loop.py)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except (typer.Exit, BrokenPipeError, *raises):  # typer.Exit is a RuntimeError too
        raise  # a broken pipe: stdout's reader left (`| head`), and Click exits quietly
    except ResponseError as exc:  # it answered: out of memory, a cluster failing over...
        err.print(f"[red]the server refused:[/red] {plain(exc)}")
        raise typer.Exit(2) from None
    except (RedisError, OSError, ServerUnavailable) as exc:
        err.print(f"[red]cannot reach the server:[/red] {plain(exc)}")
        raise typer.Exit(2) from None
    except RuntimeError as exc:  # the service refused (a partition count, contention): as it said
        err.print(f"[red]refused:[/red] {plain(exc)}")
        raise typer.Exit(2) from None
