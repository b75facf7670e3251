"""Is the server keeping what it acknowledges? (DESIGN 2: AOF on.)

The embedded server is started with AOF on. An external server is whatever
its operator made it: with `appendonly no` a server crash loses every event
written since its last snapshot, acknowledged or not. We cannot fix that from
here, so we say it loudly at start. Servers that refuse CONFIG (ACLs, managed
services, a renamed command) are tolerated: we log that we could not tell.
"""

from __future__ import annotations

from typing import Any

import structlog
from redis.exceptions import ResponseError

log = structlog.get_logger("durability")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def check_persistence(client: Any) -> str:
    """"aof" when AOF is on, "off" when it is not (warned), "unknown" when CONFIG is refused."""
    try:
        reply = await client.config_get("append*")
    except ResponseError as exc:
        log.warning("cannot read the server's persistence settings (CONFIG refused); make sure "
                    "it runs with appendonly yes, or acknowledged events can be lost",
                    error=str(exc))
        return "unknown"
    settings = {_text(k): _text(v) for k, v in reply.items()}
    if settings.get("appendonly") != "yes":
        log.warning("DURABILITY WARNING: the Redis server has appendonly=no: a server crash loses "
                    "acknowledged events. Run it with appendonly yes and appendfsync everysec "
                    "(or always)", appendonly=settings.get("appendonly"))
        return "off"
    if settings.get("appendfsync") == "no":
        log.warning("DURABILITY WARNING: the Redis server has appendfsync=no: the OS decides when "
                    "the log reaches the disk, and a machine crash can lose acknowledged events; "
                    "use everysec or always", appendfsync="no")
    return "aof"
