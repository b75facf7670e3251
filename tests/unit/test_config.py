"""Settings from the environment: every value checked, a refusal names its variable."""

from __future__ import annotations

import pytest

from services import config


@pytest.mark.parametrize(("env", "named"), [
    ({"TIMELINE_LOG_LEVEL": "verbose"}, "TIMELINE_LOG_LEVEL"),  # was INFO, silently
    ({"TIMELINE_REDIS_CLUSTER": "true"}, "TIMELINE_REDIS_CLUSTER"),  # was "not a cluster"
    ({"TIMELINE_REDIS_URL": "localhost:6379"}, "TIMELINE_REDIS_URL"),  # was redis-py's error
    ({"TIMELINE_PORT": "99999"}, "TIMELINE_PORT"),
    # Each was a traceback from redis-py on the first command, the last db 0 silently.
    ({"TIMELINE_REDIS_URL": "redis://localhost:99999/0"}, "TIMELINE_REDIS_URL.*out of range"),
    ({"TIMELINE_REDIS_URL": "redis+cluster://h:abc"}, "TIMELINE_REDIS_URL.*'abc'"),
    ({"TIMELINE_REDIS_URL": "redis://[::1/0"}, "TIMELINE_REDIS_URL.*IPv6"),
    ({"TIMELINE_REDIS_URL": "redis://h:6379/zero"}, "TIMELINE_REDIS_URL.*database"),
    ({"TIMELINE_FSYNC": "never"}, "TIMELINE_FSYNC"),
])
def test_a_value_the_service_cannot_use_is_refused_by_name(
    env: dict[str, str], named: str
) -> None:
    with pytest.raises(config.ConfigError, match=named):
        config.load(env)


def test_a_refused_url_keeps_its_password_hidden() -> None:
    with pytest.raises(config.ConfigError) as refused:
        config.load({"TIMELINE_REDIS_URL": "valkey://user:s3cret@host:6379"})
    assert "s3cret" not in str(refused.value)


def test_accepted_values() -> None:
    settings = config.load({"TIMELINE_LOG_LEVEL": "debug", "TIMELINE_REDIS_CLUSTER": "1",
                            "TIMELINE_REDIS_URL": "rediss://h:6380/0"})
    for url in ("redis://h", "redis://h:1/", "redis://[::1]:6379/15", "unix:///tmp/v.sock?db=2"):
        assert config.load({"TIMELINE_REDIS_URL": url}).redis_url == url
    assert (settings.log_level, settings.redis_cluster) == ("DEBUG", True)
    assert config.load({"TIMELINE_REDIS_URL": "redis+cluster://h:7000"}).redis_cluster
    assert not config.load({"TIMELINE_REDIS_CLUSTER": "0"}).redis_cluster
    assert config.load({}).log_level == "INFO"
