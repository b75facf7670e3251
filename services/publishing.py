"""Publishing from files: JSON, JSON arrays and JSONL, validated and appended
in batches, each event's fate counted (used by `publish` and `import`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import msgspec

from events.envelope import NewEvent, validate_event
from events.errors import EventValidationError
from services.log.append import Appender, BatchRejected, now_rfc3339

BATCH = 500


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


def read_events(text: str) -> Iterator[tuple[int, Any]]:
    """(line number, decoded object) from a JSON document or JSON lines."""
    stripped = text.strip()
    if stripped.startswith("["):
        yield from enumerate(msgspec.json.decode(stripped), start=1)
        return
    if stripped.startswith("{") and "\n" in stripped:
        try:  # one pretty-printed object rather than JSON lines
            whole = msgspec.json.decode(stripped)
        except msgspec.DecodeError:
            pass
        else:
            yield 1, whole
            return
    # Only \n ends a JSON line: str.splitlines() would also split at U+2028 in strings.
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            try:
                yield number, msgspec.json.decode(line)
            except msgspec.DecodeError as exc:
                yield number, Unusable([f"malformed JSON: {exc}"])


async def publish_all(
    appender: Appender, items: Iterable[tuple[int, Any]], recordedby: str,
    on_reject: Callable[[Rejection], None], on_progress: Callable[[int], None] = lambda n: None,
) -> Tally:
    tally = Tally()
    batch: list[tuple[int, NewEvent]] = []
    today = now_rfc3339()[:10]
    for line, raw in items:
        ident = raw.get("id") if isinstance(raw, dict) else None
        if isinstance(raw, Unusable):
            tally.rejected += 1
            on_reject(Rejection(line, raw.id, raw.reasons))
            on_progress(1)
            continue
        try:
            batch.append((line, validate_event(raw, today)))
        except EventValidationError as exc:
            tally.rejected += 1
            on_reject(Rejection(line, ident if isinstance(ident, str) else None,
                                [f"{e.path}: {e.message}" for e in exc.errors]))
            on_progress(1)
        if len(batch) >= BATCH:
            await _flush(appender, batch, recordedby, tally, on_reject)
            on_progress(len(batch))
            batch = []
    if batch:
        await _flush(appender, batch, recordedby, tally, on_reject)
        on_progress(len(batch))
    return tally


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
