"""structlog set up once, at the entry point: JSON off a terminal."""

from __future__ import annotations

import logging
import sys

import msgspec
import structlog


def _json(event: dict[str, object], **_: object) -> str:
    # msgspec rather than the standard library's json: a log line per request or
    # batch is on every hot path. Values it does not know are written as str().
    return msgspec.json.encode(event, enc_hook=str).decode()


class _Stderr:
    """sys.stderr as it is at each write, not as it was when logging was set up: whoever
    swaps stderr for a while (a test runner capturing a command's output) may close the
    one it swapped in, and a logger cached with it would fail on every line after."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


# One list of processors for the process, changed in place by every configure(): a
# logger cached on first use keeps the list it was built with, so a later configure()
# (the tests run several commands in one process) must not hand structlog a new one,
# or that logger keeps the old renderer and structlog's capture_logs() misses it.
_PROCESSORS: list[structlog.typing.Processor] = []


def configure(log_format: str = "console", level: str = "INFO") -> None:
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer(serializer=_json)
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    numeric = logging.getLevelName(level) if isinstance(logging.getLevelName(level), int) else 20
    logging.basicConfig(stream=_Stderr(), level=numeric, format="%(message)s", force=True)
    _PROCESSORS[:] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        renderer,
    ]
    structlog.configure(
        processors=_PROCESSORS,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(_Stderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
