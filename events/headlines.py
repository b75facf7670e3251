"""Generated English headlines, one phrase per catalog type."""

from __future__ import annotations

from typing import Any

from events import catalog as c
from events.refs import EntityRef, Money


def _names(refs: list[EntityRef]) -> str:
    labels = [r.label for r in refs]
    if len(labels) <= 2:
        return " and ".join(labels)
    return ", ".join(labels[:-1]) + " and " + labels[-1]


def _money(value: Money | None) -> str:
    if value is None:
        return ""
    amount = value.amount
    for size, word in ((1e12, "trillion"), (1e9, "billion"), (1e6, "million")):
        if amount >= size:
            return f" of {amount / size:g} {word} {value.currency}"
    return f" of {amount:,.0f} {value.currency}"


def _headline(data: Any) -> str | None:
    match data:
        case c.MouSigned(parties=parties):
            return f"{_names(parties)} signed an MOU"
        case c.ContractConcluded(parties=parties, value=value):
            return f"{_names(parties)} concluded a contract{_money(value)}"
        case c.CollaborationLaunched(parties=parties, title=title):
            return f"{_names(parties)} launched {title}"
        case c.SiteVisited(visitor=visitor, place=place):
            return f"{visitor.label} visited {place.label}"
        case c.MeetingHeld(parties=parties):
            return f"{_names(parties)} met"
        case c.InvestmentAnnounced(investor=investor, amount=amount, area=area):
            where = f" in {area}" if area else ""
            return f"{investor.label} announced an investment{_money(amount)}{where}"
        case c.AcquisitionAnnounced(acquirer=acquirer, target=target):
            return f"{acquirer.label} announced the acquisition of {target.label}"
        case c.AwardReceived(recipient=recipient, award=award):
            return f"{recipient.label} received {award}"
        case c.SolutionDeployed(provider=provider, client=client, application=application):
            return f"{provider.label} deployed {application} at {client.label}"
    return None


def headline(event_type: str, subject: str, data: Any) -> str:
    """The publisher's `headline` when given, else one generated from the data."""
    given = getattr(data, "headline", None)
    if given:
        return str(given)
    generated = _headline(data)
    if generated:
        return generated
    verb = event_type.rpartition(".")[2]
    return f"{subject}: {event_type.partition('.')[0].removeprefix('x-')} {verb}"
