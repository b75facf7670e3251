"""`timeline tail`: follow entries as the projection applies them (the live stream)."""

from __future__ import annotations

import asyncio
import re
import signal
import sys

import msgspec
from rich.console import Console

from events.refs import ENTITY_ID_PATTERN
from projections.live import LiveMessage, LiveReader, matches
from services import bootstrap
from services.config import Settings

POLL_MS = 5000
_json = msgspec.json.Encoder()
_ID = re.compile(ENTITY_ID_PATTERN)


def bad_filters(entity: str | None, topic: str | None) -> str | None:
    for name, value in (("--entity", entity), ("--topic", topic)):
        if value is not None and not _ID.fullmatch(value):
            return f"{name} {value!r} is not an entity id or topic slug"
    return None


def line(message: LiveMessage) -> str:
    entry = message.entry
    status = "" if entry.status == "active" else f"  [{entry.status} v{entry.version}]"
    return f"{entry.occurred:<24} {entry.type:<24} {entry.headline}{status}"


async def follow(
    settings: Settings, entity: str | None, topic: str | None, as_json: bool, console: Console,
) -> bool:
    """Print matching entries, starting with the next one applied, until Ctrl-C; True
    when interrupted (the caller exits 130).

    Ctrl-C sets an event instead of cancelling the task: a cancellation landing while
    redis-py starts a blocking XREAD can be swallowed (redis/redis-py#2028), and the
    tail would then ignore Ctrl-C for good.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    try:
        async with bootstrap.services(settings) as built:
            reader = LiveReader(built.client)
            after = await reader.last_id()
            sys.stderr.write(f"following new entries after {after} (Ctrl-C stops)\n")
            sys.stderr.flush()
            stopping = asyncio.ensure_future(stop.wait())
            while True:
                reading = asyncio.ensure_future(reader.read_checked(after, POLL_MS))
                await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if stop.is_set():
                    reading.cancel()
                    return True
                messages, trimmed, through = reading.result()
                if trimmed:
                    sys.stderr.write("entries were trimmed before this tail read them; "
                                     "some were missed\n")
                    sys.stderr.flush()
                after = through
                for message in messages:
                    if not matches(message, entity, topic):
                        continue
                    if as_json:
                        sys.stdout.write(_json.encode(message).decode() + "\n")
                    else:
                        console.print(line(message), markup=False, highlight=False, emoji=False,
                                      soft_wrap=True)
                    sys.stdout.flush()  # a pipe reader (grep, a test) sees each entry at once
    finally:
        loop.remove_signal_handler(signal.SIGINT)
