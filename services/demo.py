"""The demo story of DESIGN section 1, loaded when the log is empty."""

from __future__ import annotations

from pathlib import Path

from services.bootstrap import Services
from services.publishing import publish_all, read_events

STORY = Path(__file__).with_name("demo_story.jsonl")


async def load_demo(services: Services) -> int:
    """Append the story unless the log already holds events; return how many appended."""
    if await services.log.total() > 0:
        return 0
    problems: list[object] = []
    tally = await publish_all(services.appender, read_events(STORY.read_text()), "demo",
                              problems.append)
    if problems:
        raise RuntimeError(f"the demo story does not validate: {problems}")
    return tally.appended
