"""Server-side scripts, loaded from the .lua files that sit beside their callers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from redis.commands.core import AsyncScript


def load(client: Any, path: Path) -> AsyncScript:
    """A script object that calls EVALSHA and reloads itself after a server restart."""
    script: AsyncScript = client.register_script(path.read_text())
    return script
