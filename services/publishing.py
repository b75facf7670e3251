"""Publishing from files: JSON, JSON arrays and JSONL, validated and appended
in batches, each event's fate counted (used by `publish` and `import`)."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import msgspec

from events.codec import UNREADABLE
from events.envelope import NewEvent, validate_event
from events.errors import EventValidationError
from services.log.append import Appender, BatchRejected, now_rfc3339

BATCH = 500
_YIELD_EVERY = 50  # items validated between chances for the append in flight to move
# Turns of the event loop a new append gets before validation goes on: one to split
# its batch by partition, one for every partition to chain its events and send its
# script, and a spare two for a connection taken from the pool. Until the scripts are
# sent the server idles; without these turns the sends waited for the next 50 items to
# be validated (~1 ms), and the append ran 52-55k events/s instead of 62k at 200k.
_TURNS_TO_SEND = 4


class Tally(msgspec.Struct):
    appended: int = 0
    duplicate: int = 0
    rejected: int = 0


class Rejection(msgspec.Struct):
    line: int
    id: str | None
    reasons: list[str]


class Unusable(msgspec.Struct, frozen=True):
    """An input record that cannot become an event at all (malformed JSON, an importer's
    rule such as an impossible date): rejected with these reasons, never sent to validation."""

    reasons: list[str]
    id: str | None = None


def read_events(text: str) -> JsonRecords:
    """(line number, decoded object) from a JSON document or JSON lines."""
    return JsonRecords(text)


class JsonRecords:
    """The records of a JSON document or of JSON lines, and how many there are.

    A document (an array, or one pretty-printed object) is decoded whole here, so a
    broken one raises before anything is appended. JSON lines are decoded one by one
    as they are taken, so a large import holds its text and a batch or two, not every
    decoded event; a line that does not decode is an `Unusable` record, never a raise
    (`timeline publish` and `import` count on that to stream them)."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._whole = _document(text)
        self._count = (len(self._whole) if self._whole is not None
                       else sum(1 for _ in _filled_lines(text)))

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        if self._whole is not None:
            yield from enumerate(self._whole, start=1)
            return
        for number, line in _filled_lines(self._text):
            try:
                yield number, msgspec.json.decode(line)
            except UNREADABLE as exc:
                yield number, Unusable([f"malformed JSON: {exc}"])


_VISIBLE = re.compile(r"\S")


def _document(text: str) -> list[Any] | None:
    """The records of `text` decoded whole if it is one JSON document (an array, or an
    object over several lines); None for JSON lines."""
    visible = _VISIBLE.search(text)
    if visible is None:
        return None
    begin, first_end = visible.start(), text.find("\n", visible.start())
    if text[begin] == "[":
        records: list[Any] = msgspec.json.decode(text.strip())
        return records
    if text[begin] != "{" or first_end < 0 or _VISIBLE.search(text, first_end) is None:
        return None
    first_line = text[begin:first_end]
    with contextlib.suppress(*UNREADABLE):
        msgspec.json.decode(first_line)
        # A whole record on the first line and more after it: JSON lines, which the
        # whole text would fail to decode as (and, if it is not ASCII, keep a UTF-8
        # copy of for as long as it lives).
        return None
    try:  # one pretty-printed object rather than JSON lines
        return [msgspec.json.decode(text.strip())]
    except UNREADABLE:
        # A line holding only `{` is no JSON-lines record: the file is one object,
        # broken (cut short, say), and is refused whole, as a broken array is, rather
        # than rejected line by line.
        if first_line.strip() == "{":
            raise
        return None


def _filled_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of every line of `text` that is not blank, one at a time
    (`split` would copy the whole text at once). Only a newline ends a JSON line:
    str.splitlines() would also split at U+2028 inside strings."""
    start, number = 0, 0
    while start <= len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        number += 1
        line = text[start:end]
        if line.strip():
            yield number, line
        start = end + 1


async def publish_all(
    appender: Appender, items: Iterable[tuple[int, Any]], recordedby: str,
    on_reject: Callable[[Rejection], None], on_progress: Callable[[int], None] = lambda n: None,
    tally: Tally | None = None,
) -> Tally:
    """Validate `items` and append them in batches of BATCH, reporting in input order.
    `tally`, when given, is counted into as it goes: a caller still has the counts of a
    run the server cut off."""
    flow = _Flow(appender, recordedby, on_reject, on_progress,
                 tally if tally is not None else Tally())
    today = now_rfc3339()[:10]
    try:
        for count, (line, raw) in enumerate(items, start=1):
            flow.take(line, raw, today)
            if len(flow.batch) >= BATCH:
                await flow.hand_over()
            elif count % _YIELD_EVERY == 0:
                await flow.let_append_run()
        await flow.hand_over()
        await flow.finish()
    except Exception:
        with contextlib.suppress(Exception):  # the batch in flight ends as it would have
            await flow.finish()
        flow.report_invalid()
        raise
    except BaseException:
        flow.cancel()
        raise
    return flow.tally


class _Flow:
    """Validation of the next batch overlapped with the append of the previous one:
    the server runs one batch's scripts while this process validates the next, so
    neither waits for the other. At most one append is in flight, and batches are
    appended in input order (a correction may target an event of the batch before).
    A batch's invalid items are reported when it is handed over, after the previous
    batch's conflicts: the order a sequential loop would report them in."""

    def __init__(self, appender: Appender, recordedby: str,
                 on_reject: Callable[[Rejection], None],
                 on_progress: Callable[[int], None], tally: Tally) -> None:
        self.appender, self.recordedby = appender, recordedby
        self.on_reject, self.on_progress = on_reject, on_progress
        self.tally = tally
        self.batch: list[tuple[int, NewEvent]] = []
        self._invalid: list[Rejection] = []
        self._in_flight: asyncio.Task[None] | None = None

    def take(self, line: int, raw: Any, today: str) -> None:
        if isinstance(raw, Unusable):
            self._reject(Rejection(line, raw.id, raw.reasons))
            return
        try:
            self.batch.append((line, validate_event(raw, today)))
        except EventValidationError as exc:
            ident = raw.get("id") if isinstance(raw, dict) else None
            self._reject(Rejection(line, ident if isinstance(ident, str) else None,
                                   [f"{e.path}: {e.message}" for e in exc.errors]))

    def _reject(self, rejection: Rejection) -> None:
        self.tally.rejected += 1
        self._invalid.append(rejection)
        self.on_progress(1)

    async def hand_over(self) -> None:
        """Wait for the batch in flight, report this one's invalid items, send this one."""
        await self.finish()
        self.report_invalid()
        if self.batch:
            self._in_flight = asyncio.create_task(self._append(self.batch))
            self.batch = []
            for _ in range(_TURNS_TO_SEND):
                await asyncio.sleep(0)

    def report_invalid(self) -> None:
        for rejection in self._invalid:
            self.on_reject(rejection)
        self._invalid = []

    async def _append(self, batch: list[tuple[int, NewEvent]]) -> None:
        await _flush(self.appender, batch, self.recordedby, self.tally, self.on_reject)
        self.on_progress(len(batch))

    async def let_append_run(self) -> None:
        if self._in_flight is not None and not self._in_flight.done():
            await asyncio.sleep(0)  # its replies are read, its next script sent

    async def finish(self) -> None:
        task, self._in_flight = self._in_flight, None
        if task is not None:
            await task

    def cancel(self) -> None:
        if self._in_flight is not None:
            self._in_flight.cancel()


async def _flush(
    appender: Appender, batch: list[tuple[int, NewEvent]], recordedby: str, tally: Tally,
    on_reject: Callable[[Rejection], None],
) -> None:
    try:
        results = await appender.append([e for _, e in batch], recordedby)
    except BatchRejected as exc:
        bad = {i for i, _, _ in exc.errors}
        for index, ident, error in exc.errors:
            on_reject(Rejection(batch[index][0], ident, [f"{error.path}: {error.message}"]))
        tally.rejected += len(bad)
        rest = [item for i, item in enumerate(batch) if i not in bad]
        if rest:
            await _flush(appender, rest, recordedby, tally, on_reject)
        return
    for (line, event), result in zip(batch, results, strict=True):
        if result.status == "appended":
            tally.appended += 1
        elif result.status == "duplicate":
            tally.duplicate += 1
        else:
            tally.rejected += 1
            on_reject(Rejection(line, event.id, [f"conflict: {result.reason}"]))
