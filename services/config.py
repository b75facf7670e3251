"""Configuration from the environment (DESIGN 6), read once at the entry point."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import msgspec
from redis.connection import parse_url

DEFAULT_PARTITIONS = 8


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    redis_url: str | None = None
    redis_cluster: bool = False
    write_replicas: int = 0  # acknowledge appends only once this many replicas have them
    data_dir: Path = Path(".timeline")
    fsync: Literal["everysec", "always"] = "everysec"
    partitions: int | None = None  # None: the existing log's count, else the default
    host: str = "127.0.0.1"
    port: int = 8000
    tokens: str | None = None
    tokens_file: str | None = None
    digest_key: str | None = None
    log_format: Literal["json", "console"] = "console"
    log_level: str = "INFO"

    def masked(self) -> dict[str, object]:
        """Every setting, secrets replaced by `***` (for `timeline config`)."""
        shown: dict[str, object] = {}
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if name in ("tokens", "digest_key") and value:
                value = "***"
            if name == "redis_url" and value:
                value = mask_url(str(value))
            shown[name] = str(value) if isinstance(value, Path) else value
        return shown


def mask_url(url: str) -> str:
    """Hide a password given in the userinfo or as a `password=` query parameter."""
    url = re.sub(r"([?&]password=)[^&#]*", r"\1***", url)
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.partition(":")[0]
    return f"{scheme}{sep}{user}:***@{host}" if user else f"{scheme}{sep}***@{host}"


class ConfigError(ValueError):
    pass


def _int(env: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(f"TIMELINE_{name}")
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"TIMELINE_{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"TIMELINE_{name} must be between {low} and {high}, got {value}")
    return value


def _choice(env: dict[str, str], name: str, default: str, allowed: tuple[str, ...],
            normal: Callable[[str], str] = str) -> str:
    value = normal(env.get(f"TIMELINE_{name}") or default)
    if value not in allowed:
        raise ConfigError(f"TIMELINE_{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


URL_SCHEMES = ("redis://", "rediss://", "unix://", "redis+cluster://")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _url(env: dict[str, str]) -> str | None:
    url = env.get("TIMELINE_REDIS_URL") or None
    if url is None:
        return None
    if not url.startswith(URL_SCHEMES):
        raise ConfigError(f"TIMELINE_REDIS_URL must start with one of {', '.join(URL_SCHEMES)}"
                          f", got {mask_url(url)!r}")
    problem = _unusable(url.replace("redis+cluster://", "redis://", 1))
    if problem:
        raise ConfigError(f"TIMELINE_REDIS_URL {mask_url(url)!r}: {problem}")
    return url


def _unusable(url: str) -> str | None:
    """What redis-py would fail on later, with a traceback (a port out of range, a
    broken IPv6 address), or silently ignore (a database that is not a number)."""
    try:
        parse_url(url)
    except ValueError as exc:
        return str(exc)
    path = urlsplit(url).path.strip("/")
    if not url.startswith("unix://") and path and not path.isdigit():
        return f"the database must be a number, got {path!r}"
    return None


def load(env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ) if env is None else env
    url = _url(env)
    default_format = "console" if sys.stderr.isatty() else "json"
    return Settings(
        redis_url=url,
        redis_cluster=_choice(env, "REDIS_CLUSTER", "0", ("0", "1")) == "1"
        or bool(url and url.startswith("redis+cluster://")),
        write_replicas=_int(env, "WRITE_REPLICAS", 0, 0, 64),
        data_dir=Path(env.get("TIMELINE_DATA_DIR") or ".timeline"),
        fsync=_choice(env, "FSYNC", "everysec", ("everysec", "always")),  # type: ignore[arg-type]
        partitions=_int(env, "PARTITIONS", 0, 1, 1024) or None,
        host=env.get("TIMELINE_HOST") or "127.0.0.1",
        port=_int(env, "PORT", 8000, 0, 65535),
        # Set but empty stays "" (unlike the settings above, where it means the default):
        # load_tokens refuses it, as it refuses a value naming no token, rather than
        # taking it for "not configured", which would turn auth off.
        tokens=env.get("TIMELINE_TOKENS"),
        tokens_file=env.get("TIMELINE_TOKENS_FILE"),
        digest_key=env.get("TIMELINE_DIGEST_KEY") or None,
        log_format=_choice(env, "LOG_FORMAT", default_format, ("json", "console")),  # type: ignore[arg-type]
        log_level=_choice(env, "LOG_LEVEL", "INFO", LOG_LEVELS, str.upper),
    )
