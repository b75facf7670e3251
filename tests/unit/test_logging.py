"""services/logging.py: configured once, it writes wherever stderr is now."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator

import pytest
import structlog

from services import logging as service_logging


@pytest.fixture(autouse=True)
def restored_logging() -> Iterator[None]:
    """Each test configures logging; the others get it back as it was."""
    saved, handlers, level = structlog.get_config(), logging.root.handlers[:], logging.root.level
    yield
    structlog.configure(**saved)
    logging.root.handlers[:], logging.root.level = handlers, level


def test_a_logger_keeps_working_after_the_stderr_it_was_set_up_with_closes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    swapped, real = io.StringIO(), sys.stderr
    try:
        sys.stderr = swapped  # as a test runner capturing one command's output does
        service_logging.configure("json")
        log = structlog.get_logger("test")
        log.info("during")
        sys.stderr = real
        swapped.close()
        log.info("after")  # cached with the closed stream, this raised ValueError
    finally:
        sys.stderr = real
    err = capsys.readouterr().err  # read once: a second read returns nothing
    assert '"event":"after"' in err
    assert "during" not in err  # it went to the stream swapped in at the time


def test_capture_logs_sees_a_logger_cached_before_logging_was_configured_again() -> None:
    # The tests run several commands in one process, each configuring logging; a logger
    # cached under the first configuration must follow the later ones, capture_logs too.
    service_logging.configure("json")
    log = structlog.get_logger("test")
    log.info("caches the logger")
    service_logging.configure("json")
    with structlog.testing.capture_logs() as logs:
        log.error("seen")
    assert [e["event"] for e in logs] == ["seen"]
