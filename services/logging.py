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


def configure(log_format: str = "console", level: str = "INFO") -> None:
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer(serializer=_json)
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    numeric = logging.getLevelName(level) if isinstance(logging.getLevelName(level), int) else 20
    logging.basicConfig(stream=sys.stderr, level=numeric, format="%(message)s", force=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
