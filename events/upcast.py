"""Reading stored events written under older schema versions.

A stored event records `schemaversion`; `upcast` lifts its data to the current
version by running each registered step in turn. Version 1 is current for
every v1 type, so the registry starts empty: a new step is added with the
schema change that needs it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from events.catalog import schema_version

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def upcast(event_type: str, version: int, data: dict[str, Any]) -> dict[str, Any]:
    """Data of `event_type` written at `version`, as the current schema reads it."""
    current = schema_version(event_type)
    while version < current:
        data = UPCASTERS[(event_type, version)](data)
        version += 1
    return data
