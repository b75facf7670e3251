"""Parked projection entries: list them, and retry them once the bug is fixed.

Retrying is a rebuild: `unpark` runs the audit replay with promote, which
folds the whole log again, parked entries included, in log order, into the
inactive copy and switches reads to it (services/audit/replay.py). Applying a
parked entry alone, out of order, would need the apply script to write a
sequence it has already passed and would leave the as-of history wrong for
everything recorded after it; a rebuild is exact. A parked entry is removed
only once the live read model shows it applied; one that fails again makes
the replay fail, changes nothing, and stays parked.
"""

from __future__ import annotations

import msgspec

from events.stored import stored_decoder
from projections.parking import Parked, parked, unpark
from projections.runner import PROJECTION
from services.audit.replay import replay
from services.bootstrap import Services, helpers_for


class UnparkReport(msgspec.Struct):
    retried: int
    applied: list[Parked]
    still_parked: list[Parked]
    replay_seconds: float


async def list_parked(built: Services) -> list[Parked]:
    return await parked(built.client, built.partitions, PROJECTION)


async def is_applied(built: Services, entry: Parked) -> bool:
    """Whether the live read model holds this entry's version (its position in a history)."""
    try:
        event = stored_decoder.decode(entry.event)
    except msgspec.DecodeError:
        return False
    found = await built.read_model.entry(event.source, event.id)
    return found is not None and any(v.position == event.position for v in found[1])


async def unpark_all(built: Services) -> UnparkReport:
    """Rebuild from the log and switch to the rebuild; clear what is now applied."""
    before = await list_parked(built)
    if not before:
        return UnparkReport(0, [], [], 0.0)
    report = await replay(built.client, built.partitions, promote=True,
                          helpers=helpers_for(built))
    applied, still = [], []
    for entry in before:
        if await is_applied(built, entry):
            await unpark(built.client, PROJECTION, entry.partition, entry.sequence)
            applied.append(entry)
        else:
            still.append(entry)
    return UnparkReport(len(before), applied, still, report.seconds)
