"""services/redis/packing.py: hiredis packs exactly the bytes redis-py's asyncio
connections pack, and whatever it would pack otherwise (or crash on) goes redis-py's
way."""

from __future__ import annotations

import enum
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from services.redis.packing import hiredis_packed

ORIGINAL = getattr(Connection.pack_command, "__wrapped__", Connection.pack_command)
PACKED = hiredis_packed(ORIGINAL)


def redis_py(*args: Any, **kwargs: Any) -> bytes:
    return b"".join(bytes(part) for part in ORIGINAL(Connection(**kwargs), *args))


def ours(*args: Any, **kwargs: Any) -> bytes:
    return b"".join(bytes(part) for part in PACKED(Connection(**kwargs), *args))


class Colour(enum.IntEnum):
    RED = 1


class Unprintable(float):
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


argument = st.one_of(st.text(), st.binary(), st.integers(), st.floats(), st.booleans(),
                     st.binary(min_size=7000, max_size=7000))  # beyond redis-py's chunking
name = st.sampled_from(["SET", "EVALSHA", "CONFIG GET", b"SCRIPT LOAD", b"XADD", "", " ", 1.5])


def outcome(pack: Any, *args: Any) -> bytes | str:
    try:
        return bytes(pack(*args))
    except Exception as exc:  # compared below, not swallowed
        return f"{type(exc).__name__}: {exc}"


@given(name, st.lists(argument, max_size=20))
def test_the_same_bytes_or_error_as_redis_py(command: Any, args: list[Any]) -> None:
    assert outcome(ours, command, *args) == outcome(redis_py, command, *args)


def test_a_command_name_with_a_space_is_two_arguments() -> None:
    assert ours("CONFIG GET", "maxmemory").startswith(b"*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n")
    assert ours(b"SCRIPT LOAD", "return 1").startswith(b"*3\r\n$6\r\nSCRIPT\r\n$4\r\nLOAD\r\n")


@pytest.mark.parametrize("value", [True, None, object()], ids=["bool", "None", "object"])
def test_what_redis_py_refuses_is_still_a_data_error(value: Any) -> None:
    with pytest.raises(DataError, match="Invalid input of type"):
        ours("SET", "k", value)


@pytest.mark.parametrize("value", [bytearray(b"ab"), memoryview(b"abcdef")[::2], Colour.RED],
                         ids=["bytearray", "strided memoryview", "IntEnum"])
def test_what_is_not_plain_goes_redis_pys_way(value: Any) -> None:
    assert ours("SET", "k", value) == redis_py("SET", "k", value)


@pytest.mark.parametrize(("value", "error"), [(10**4300, ValueError),
                                              (Unprintable(1.5), RuntimeError)],
                         ids=["int beyond the digit limit", "float subclass"])
def test_what_would_crash_hiredis_raises_as_in_redis_py(
    value: Any, error: type[Exception]
) -> None:
    with pytest.raises(error):
        redis_py("SET", "k", value)
    with pytest.raises(error):
        ours("SET", "k", value)


def test_another_encoding_is_left_to_redis_py() -> None:
    assert ours("SET", "k", "é", encoding="latin-1") == redis_py("SET", "k", "é",
                                                                 encoding="latin-1")
    assert ours("SET", "k", "é", encoding="latin-1").endswith(b"$1\r\n\xe9\r\n")
