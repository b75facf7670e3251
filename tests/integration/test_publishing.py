"""publish_all (behind `timeline publish` and `import`): counts, and the order of reports
over several batches."""

from __future__ import annotations

from typing import Any

import pytest

from services.bootstrap import Services
from services.publishing import BATCH, Rejection, Unusable, publish_all


def mou(ident: str, occurred: str = "2023-12") -> dict[str, Any]:
    return {"specversion": "1.0", "id": ident, "source": "urn:test", "type": "mou.signed",
            "subject": "lg", "occurred": occurred,
            "data": {"parties": [{"id": "lg"}, {"id": "jax"}]}}


async def test_reports_come_in_input_order_across_batches(services: Services) -> None:
    await publish_all(services.appender, [(1, mou("taken"))], "test", lambda r: None)
    items: list[tuple[int, Any]] = []
    bad_lines, conflict_lines = [], []
    for line in range(1, 3 * BATCH + 2):
        if line % 97 == 0:
            items.append((line, {**mou(f"e{line}"), "subject": "NOT VALID"}))
            bad_lines.append(line)
        elif line % 211 == 0:
            items.append((line, mou("taken", occurred="1999")))  # same id, other content
            conflict_lines.append(line)
        elif line == 5:
            items.append((line, Unusable(["malformed JSON"])))
            bad_lines.append(line)
        else:
            items.append((line, mou(f"e{line}")))
    reported: list[Rejection] = []
    progress: list[int] = []
    tally = await publish_all(services.appender, items, "test", reported.append, progress.append)
    # Each batch's invalid items as they are read, then the conflicts its append found.
    expected: list[int] = []
    window_bad: list[int] = []
    window_conflicts: list[int] = []
    valid = 0
    for line, _ in items:
        if line in bad_lines:
            window_bad.append(line)
        else:
            valid += 1
            if line in conflict_lines:
                window_conflicts.append(line)
        if valid == BATCH or line == len(items):
            expected += window_bad + window_conflicts
            window_bad, window_conflicts, valid = [], [], 0
    assert [r.line for r in reported] == expected
    assert sum(progress) == len(items)
    appended = len(items) - len(bad_lines) - len(conflict_lines)
    assert (tally.appended, tally.duplicate, tally.rejected) == (
        appended, 0, len(bad_lines) + len(conflict_lines))
    assert await services.log.total() == appended + 1
    again = await publish_all(services.appender, items, "test", lambda r: None)
    assert (again.appended, again.duplicate) == (0, appended)


async def test_an_input_error_lets_the_batch_in_flight_finish(services: Services) -> None:
    """A reader failing mid-file (a broken importer row, say) stops the import; the
    batch already handed to the appender is appended whole, the one being read is not,
    and the invalid items read so far are reported."""

    def items() -> Any:
        for line in range(1, BATCH + 11):
            yield line, mou(f"e{line}")
        yield BATCH + 11, Unusable(["malformed JSON"])
        raise ValueError("the file broke off")

    reported: list[Rejection] = []
    with pytest.raises(ValueError, match="broke off"):
        await publish_all(services.appender, items(), "test", reported.append)
    assert await services.log.total() == BATCH
    assert [r.line for r in reported] == [BATCH + 11]  # what was read is still reported
