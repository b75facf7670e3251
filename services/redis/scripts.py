"""Server-side scripts, loaded from the .lua files that sit beside their callers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript


def load(client: Any, path: Path) -> AsyncScript:
    """A script object that calls EVALSHA and reloads itself after a server restart."""
    script: AsyncScript = client.register_script(path.read_text())
    return script


def is_cluster(client: Any) -> bool:
    return isinstance(client, RedisCluster)


async def preload(client: Any, script: AsyncScript) -> None:
    """On a cluster, load `script` on every master before queueing it in a pipeline:
    redis-py only reloads a script after NOSCRIPT outside cluster pipelines."""
    if is_cluster(client):
        await client.script_load(script.script)


async def queue(client: Any, pipe: Any, script: AsyncScript, keys: list[str],
                args: list[Any]) -> None:
    """Queue one script call in `pipe` (after `preload` on a cluster, where redis-py
    refuses its evalsha helper in pipelines; EVALSHA is routed by its first key)."""
    if is_cluster(client):
        pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
    else:
        await script(keys=keys, args=args, client=pipe)
