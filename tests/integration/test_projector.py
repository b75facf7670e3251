"""The projector's batch contract against a real server: whole batches, once."""

from __future__ import annotations

import asyncio

import pytest

from events.stored import StoredEvent, event_key
from projections.fold import Query
from projections.runner import GapError, Projector
from projections.store import FENCE
from services.bootstrap import Services


def noted(sequence: int, partition: int = 0) -> StoredEvent:
    return StoredEvent(id=f"e-{sequence}", source="urn:t", type="x-test.noted", subject="acme",
                       occurred="2024-01-02", data={}, recordedtime="2025-01-01T00:00:00.000000Z",
                       recordedby="t", partition=partition, sequence=sequence)


async def ids_on(services: Services, timeline: str) -> list[str]:
    page = await services.read_model.page(Query(timeline=timeline), 100)
    return [e.id for e in page.entries]


async def test_a_hole_in_a_batch_applies_what_precedes_it_and_stops(services: Services) -> None:
    projector = Projector(services.read_model)
    with pytest.raises(GapError) as gap:
        await projector.project(0, [noted(1), noted(2), noted(4)])
    assert gap.value.applied == 2
    assert (await services.read_model.applied()) == {0: 2}
    assert await ids_on(services, "entity:acme") == ["e-1", "e-2"]


async def test_a_redelivered_batch_changes_nothing_and_names_what_it_held(
    services: Services,
) -> None:
    projector = Projector(services.read_model)
    first = await projector.project(0, [noted(1), noted(2)])
    assert (first.applied, sorted(first.fresh), first.earlier) == (
        2, [event_key("urn:t", "e-1"), event_key("urn:t", "e-2")], [])
    again = await projector.project(0, [noted(1), noted(2), noted(3)])
    assert again.applied == 3
    assert list(again.fresh) == [event_key("urn:t", "e-3")]  # only what this call wrote
    assert again.earlier == [event_key("urn:t", "e-1"), event_key("urn:t", "e-2")]
    assert await ids_on(services, "all") == ["e-1", "e-2", "e-3"]


async def test_a_batch_that_starts_past_the_next_sequence_is_a_gap(services: Services) -> None:
    with pytest.raises(GapError) as gap:
        await Projector(services.read_model).project(0, [noted(3), noted(4)])
    assert gap.value.applied == 0
    assert await ids_on(services, "all") == []


async def test_a_batch_applied_before_comes_back_as_earlier_keys(services: Services) -> None:
    projector = Projector(services.read_model)
    await projector.project(0, [noted(1), noted(2)])
    again = await projector.project(0, [noted(1), noted(2)])
    assert (again.applied, again.fresh) == (2, {})
    assert again.earlier == [event_key("urn:t", "e-1"), event_key("urn:t", "e-2")]


async def test_no_batch_lands_while_a_promote_holds_the_fence(services: Services) -> None:
    await services.client.set(FENCE, "promote", px=60_000)
    applying = asyncio.create_task(Projector(services.read_model).project(0, [noted(1)]))
    await asyncio.sleep(0.2)
    assert not applying.done()
    assert await services.read_model.applied() == {}
    await services.client.delete(FENCE)
    assert (await applying).applied == 1
    assert await ids_on(services, "all") == ["e-1"]
