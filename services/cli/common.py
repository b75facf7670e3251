"""What every command shares: its consoles, settings loading, and running a
coroutine with the exit statuses of the README (2 for configuration and
unreachable servers, 130 for Ctrl-C)."""

from __future__ import annotations

from typing import Any

import msgspec
import typer
from redis.exceptions import RedisClusterException, RedisError, ResponseError
from rich.console import Console
from rich.markup import escape

from events.errors import FieldError
from services import config
from services import logging as service_logging
from services.log.reader import BadHead
from services.redis import loop
from services.redis.embedded import ServerUnavailable

# emoji=False: a headline holding ":rocket:" is shown as written. stderr's messages are
# not wrapped at 80 columns: each stays one line in a log file or a terminal's scrollback.
console = Console(emoji=False)
err = Console(stderr=True, emoji=False, soft_wrap=True)


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
    except (RedisError, RedisClusterException, ServerUnavailable) as exc:
        err.print(f"[red]cannot reach the server:[/red] {plain(exc)}")
        raise typer.Exit(2) from None
    except OSError as exc:  # redis-py raises its own errors: this one is local (a full disk)
        say_stopped_by(exc)
        raise typer.Exit(2) from None
    except RuntimeError as exc:  # the service refused (a partition count, contention): as it said
        err.print(f"[red]refused:[/red] {plain(exc)}")
        raise typer.Exit(2) from None
    except BadHead as exc:  # a tampered chain head, met reading the log's positions
        err.print(f"[red]the log's chain head is not sound:[/red] {plain(exc)}")
        raise typer.Exit(2) from None


def say_stopped_by(exc: OSError) -> None:
    """A local failure (a full disk, an output gone) named, where a traceback was."""
    err.print(f"[red]stopped:[/red] {plain(exc)}")


def as_typed(errors: list[FieldError]) -> str:
    """Query problems named as the command line spells them: `--as-of`, not the HTTP
    parameter `as_of`; a timeline's keys (the route's path) as KEY."""
    def name(path: str) -> str:
        if path.startswith("path"):
            return "KEY"
        return "--" + path.replace("_", "-")

    return "; ".join(f"{name(e.path)}: {e.message}" for e in errors)
