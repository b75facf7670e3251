"""The projection worker against the in-memory fold of the same log."""

from __future__ import annotations

import msgspec
import pytest

from projections.fold import Query
from services.bootstrap import Services
from tests import factory
from tests.integration.projection_helpers import publish, read_all, reference, wait_projected

pytestmark = pytest.mark.usefixtures("worker")


def timelines_to_check() -> list[str]:
    names = ["all", "entity:org-1", "entity:org-7", "pair:org-1:org-2", "pair:org-3:org-9"]
    names += [f"place:{c}" for c in ("KR", "US")] + ["place:US:new york", "place:KR:seoul"]
    return names + [f"topic:{t}" for t in factory.TOPICS]


def same(a: list[object], b: list[object]) -> None:
    assert [msgspec.to_builtins(x) for x in a] == [msgspec.to_builtins(x) for x in b]


async def test_twelve_thousand_events_project_to_the_reference_fold(services: Services) -> None:
    await publish(services, factory.story(12_000, seed=1, amend=360))
    await wait_projected(services)
    model = await reference(services)
    for name in timelines_to_check():
        for q in (
            Query(timeline=name),
            Query(timeline=name, descending=True, include_retracted=True),
            Query(timeline=name, start="2021-03-01", end="2021-06-30"),
            # newest first from a date: the lower bound page.lua derives from the span
            Query(timeline=name, descending=True, start="2021-03-01"),
            Query(timeline=name, types=("mou.signed", "x-test.noted"), with_entity="org-2"),
        ):
            expected = model.query(q)
            got = await read_all(services, q, limit=137)
            same(got, expected)
    assert len(model.query(Query(timeline="all", include_retracted=True))) == 12_000


async def test_from_to_overlap_uses_the_whole_span_of_partial_dates(services: Services) -> None:
    base = {"specversion": "1.0", "source": "urn:t", "type": "x-test.noted", "subject": "acme",
            "data": {}}
    dates = {"year": "2023", "month": "2023-12?", "day": "2023-12-11", "span": "2022-06/2024-02",
             "before": "2023-11-30", "after": "2024-01-01"}
    await publish(services, [{**base, "id": k, "occurred": v} for k, v in dates.items()])
    await wait_projected(services)
    page = await services.read_model.page(
        Query(timeline="entity:acme", start="2023-12-01", end="2023-12-31"), 100)
    assert [e.id for e in page.entries] == ["span", "year", "month", "day"]


async def test_order_puts_coarser_precision_first_on_the_same_day(services: Services) -> None:
    base = {"specversion": "1.0", "source": "urn:t", "type": "x-test.noted", "subject": "acme",
            "data": {}}
    await publish(services, [{**base, "id": "d", "occurred": "2023-01-01"},
                             {**base, "id": "m", "occurred": "2023-01"},
                             {**base, "id": "y", "occurred": "2023"}])
    await wait_projected(services)
    page = await services.read_model.page(Query(timeline="all"), 10)
    assert [e.id for e in page.entries] == ["y", "m", "d"]


async def test_from_to_work_for_early_years_long_spans_and_the_last_year(
    services: Services,
) -> None:
    base = {"specversion": "1.0", "source": "urn:t", "type": "x-test.noted", "subject": "acme",
            "data": {}}
    dates = {"early": "0850", "recent": "2023-12", "long": "0001/2023"}
    await publish(services, [{**base, "id": k, "occurred": v} for k, v in dates.items()])
    await wait_projected(services)

    async def ids(start: str | None, end: str | None) -> list[str]:
        page = await services.read_model.page(
            Query(timeline="entity:acme", start=start, end=end), 100)
        return [e.id for e in page.entries]

    assert await ids("0800-01-01", None) == ["long", "early", "recent"]
    assert await ids(None, "0900-12-31") == ["long", "early"]
    assert await ids("2023-01-01", "9999-12-31") == ["long", "recent"]


async def test_a_vendor_event_keeps_each_well_formed_common_field_and_its_parties(
    services: Services,
) -> None:
    # a topic in capitals is not a slug: it alone is left out, not the place and headline
    data = {"headline": "Acme launches X", "topics": ["AI"], "place": {"country": "US",
            "city": "Boston"}, "parties": [{"id": "acme"}, {"id": "globex", "name": "Globex"}]}
    await publish(services, [{"specversion": "1.0", "source": "urn:t", "id": "v1",
                              "type": "x-acme.launched", "subject": "acme",
                              "occurred": "2023", "data": data}])
    await wait_projected(services)
    for name in ("entity:globex", "pair:acme:globex", "place:US", "place:US:boston"):
        page = await services.read_model.page(Query(timeline=name), 10)
        assert [e.id for e in page.entries] == ["v1"], name
    (entry,) = (await services.read_model.page(Query(timeline="entity:acme"), 10)).entries
    assert entry.headline == "Acme launches X" and entry.topics == []
    assert [(e.id, e.role) for e in entry.entities] == [("acme", "party"), ("globex", "party")]
    assert (await services.read_model.names(["globex"])) == {"globex": "Globex"}
