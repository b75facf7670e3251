"""Smoke test of the benchmark harness: it runs end to end at a tiny scale and
writes valid results. No timing is asserted: figures on a shared machine say
nothing about correctness; this only proves `make bench` works."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import events as gen
from bench import layout
from events.stored import stored_decoder
from projections.runner import Projector
from projections.store import namespace_key
from services.bootstrap import Services
from tests.conftest import is_cluster_url

ROOT = Path(__file__).resolve().parent.parent

MEASURED = [
    "limit.xadd_redis_py", "limit.xadd_resp", "limit.xadd", "limit.consume_redis_py",
    "limit.consume_resp", "limit.consume", "limit.stream_memory", "limit.layout_write",
    "limit.layout_memory", "limit.single_rtt_p50", "limit.single_rtt_p99", "limit.page_p50",
    "limit.page_p99",
    "peer.popo_write", "peer.sqlite_write", "peer.projection", "peer.single_save_p50",
    "peer.single_save_p99",
    "ours.append", "ours.http_batch", "ours.http_single_p50", "ours.http_single_p99",
    "ours.http_single_max_rate", "ours.projection", "ours.lag_p50", "ours.lag_p99",
    "ours.page_p50", "ours.page_p99", "ours.memory",
]
# Measured where the code exists, else "not measured: <reason>".
OPTIONAL = ["ours.page_as_of_p50", "ours.page_as_of_p99", "ours.replay", "ours.verify"]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    out = tmp_path_factory.mktemp("bench") / "results.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.run", "--scale", "2000", "--runs", "1", "--quick",
         "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    failures = json.loads(out.read_text())["meta"]["failures"] if out.exists() else None
    assert run.returncode == 0, f"{failures}\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    assert "ours: in-process append" in run.stdout  # the table was printed
    document: dict[str, object] = json.loads(out.read_text())
    return document


def test_every_figure_is_measured_with_median_min_and_max(results: dict[str, object]) -> None:
    figures = results["figures"]
    assert isinstance(figures, dict)
    assert set(MEASURED + OPTIONAL) <= set(figures)
    for key in MEASURED:
        figure = figures[key]
        assert isinstance(figure, dict), f"{key}: {figure}"
        assert figure["runs"] and len(figure["runs"]) == 1
        assert figure["min"] <= figure["median"] <= figure["max"]
        assert figure["median"] > 0, key
        assert figure["unit"] in ("events/s", "req/s", "ms", "bytes/event")


def test_missing_figures_say_why_instead_of_inventing_numbers(
        results: dict[str, object]) -> None:
    figures = results["figures"]
    assert isinstance(figures, dict)
    for key in OPTIONAL:
        figure = figures[key]
        if isinstance(figure, str):
            assert figure.startswith("not measured: ") and len(figure) > len("not measured: ")
        else:
            assert figure["median"] > 0


def test_ours_are_compared_with_the_limit_and_the_peer(results: dict[str, object]) -> None:
    ratios, targets = results["ratios"], results["targets"]
    assert isinstance(ratios, dict) and isinstance(targets, dict)
    assert set(ratios["ours.append"]) == {"limit", "popo_write", "sqlite_write"}
    assert set(ratios["ours.projection"]) == {"limit", "layout", "projection"}
    assert set(ratios["ours.memory"]) == {"limit", "layout"}
    assert "limit" in ratios["ours.page_p50"]
    for key in ("ours.append", "ours.projection", "ours.lag_p99", "ours.memory"):
        assert isinstance(targets[key]["met"], bool)
        assert targets[key]["target"]


def test_meta_names_the_command_scale_and_machine(results: dict[str, object]) -> None:
    meta = results["meta"]
    assert isinstance(meta, dict)
    assert meta["command"].startswith("python -m bench.run --scale 2000")
    assert meta["scale"] == 2000 and meta["runs"] == 1 and meta["quick"] is True
    assert meta["machine"]["nproc"] >= 1 and meta["machine"]["cpu"]
    assert meta["machine"]["server_allocator"] in ("jemalloc", "libc")
    assert 300 <= meta["event_bytes_mean"] <= 550  # "about 400 bytes"
    assert meta["failures"] == []


def test_queries_and_audit_meet_amended_entries(results: dict[str, object]) -> None:
    figures = results["figures"]
    assert isinstance(figures, dict)
    # 2,000 events: the hot entity's events 0, 500 and 1000 are corrected or retracted
    assert figures["ours.page_as_of_p99"]["amended"] == 3
    assert figures["ours.replay"]["identical"] == [True]
    assert figures["ours.replay"]["events"] == 2003


def test_amendments_are_valid_and_target_the_hot_entity() -> None:
    from bench import events as gen
    from events.catalog import CORRECTED, RETRACTED
    from events.envelope import validate_event

    events = gen.generate(10_000)
    fixes = gen.amendments(events)
    hot = {e["id"] for e in events if e["subject"] == gen.HOT}
    assert [f["type"] for f in fixes].count(RETRACTED) == 2  # events 500 and 5,500
    assert [f["type"] for f in fixes].count(CORRECTED) == 10
    for fix in fixes:
        validate_event(fix, today="2026-01-01")
        assert fix["subject"] == gen.HOT and fix["data"]["target"] in hot


def test_latency_figures_say_which_runs_met_an_aof_rewrite(results: dict[str, object]) -> None:
    figures = results["figures"]
    assert isinstance(figures, dict)
    for key in ("ours.lag_p99", "ours.page_p99", "ours.page_as_of_p99", "ours.http_single_p99"):
        (run,) = figures[key]["aof_rewrites"]
        assert set(run) == {"running_at_start", "forks", "last_fork_ms"}, key
        assert isinstance(run["running_at_start"], bool) and run["forks"] >= 0, key
        assert (run["last_fork_ms"] > 0) == (run["forks"] > 0), key


def test_a_run_records_the_aof_rewrite_that_forked_the_server(tmp_path: Path) -> None:
    from bench.stack import Stack

    with Stack(tmp_path) as stack:
        stack.redis.set("key", "value" * 1000)
        while stack.rewriting():  # a fresh server may still be writing its first base
            time.sleep(0.01)
        with stack.rewrites() as quiet:
            stack.redis.get("key")
        with stack.rewrites() as rewritten:
            stack.redis.bgrewriteaof()
            while stack.rewriting():
                time.sleep(0.01)
    assert (quiet.running_at_start, quiet.forks, quiet.note()) == (False, 0, "")
    assert rewritten.forks == 1 and rewritten.last_fork_ms > 0
    assert "1 AOF rewrite fork (the last stopped the server" in rewritten.note()


def test_settling_waits_out_an_aof_rewrite(tmp_path: Path) -> None:
    from bench.stack import Stack

    with Stack(tmp_path) as stack:
        stack.redis.eval("for i = 1, 200000 do redis.call('SET', 'k' .. i, "
                         "string.rep('x', 100)) end", 0)
        stack.redis.bgrewriteaof()
        # the server marks the rewrite done only when its timer collects the child
        assert stack.rewriting()
        with stack.rewrites() as started_before:
            pass
        stack.settle()
        assert not stack.rewriting()
    assert started_before.running_at_start
    assert started_before.note() == "; an AOF rewrite was running at the start"


@pytest.mark.parametrize("feed", [7, 1 << 16])  # commands cut across the reader's pieces
def test_an_aof_file_reads_back_as_its_commands_and_their_bytes(
    feed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench import aof
    from bench.aof import commands, tally

    monkeypatch.setattr(aof, "FEED", feed)
    set_k = b"*3\r\n$3\r\nSET\r\n$8\r\nstore:k1\r\n$2\r\nv1\r\n"
    xadd = b"*5\r\n$4\r\nxadd\r\n$8\r\nstore:k2\r\n$3\r\n1-0\r\n$1\r\nf\r\n$0\r\n\r\n"
    data = set_k + xadd + set_k
    assert list(commands(data)) == [([b"SET", b"store:k1", b"v1"], len(set_k)),
                                    ([b"xadd", b"store:k2", b"1-0", b"f", b""], len(xadd)),
                                    ([b"SET", b"store:k1", b"v1"], len(set_k))]
    sizes, calls = tally(data, lambda key: key.split(":")[0] + ":*")
    assert sizes == {("SET", "store:*"): 2 * len(set_k), ("XADD", "store:*"): len(xadd)}
    assert calls == {("SET", "store:*"): 2, ("XADD", "store:*"): 1}
    with pytest.raises(ValueError, match="not a command after byte 0"):
        list(commands(b"$3\r\nSET\r\n"))
    with pytest.raises(ValueError, match="21 bytes after byte 0 are not whole commands"):
        list(commands(b"*2\r\n$3\r\nDEL\r\n$10\r\nabc"))  # cut off mid-command
    with pytest.raises(ValueError, match="not a command after byte 0"):
        list(commands(b"*1\r\n:1\r\n"))
    with pytest.raises(ValueError, match="not RESP after byte 13"):
        list(commands(b"*1\r\n$3\r\nDELETE\r\n"))  # a bulk string that runs on
    with pytest.raises(ValueError, match=f"not RESP after byte {len(set_k)}"):
        list(commands(set_k + b"#TS:1700000000\r\n" + set_k))  # aof-timestamp-enabled


def test_the_aof_profile_counts_what_each_published_event_writes() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench.profile", "aof", "--scale", "2000", "--seconds", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stderr[-3000:]
    # the 5,000 events offered in one second, every one in the log
    assert "5,000 events appended" in run.stdout, run.stdout
    lines = run.stdout.splitlines()
    live = next(line for line in lines if "XADD timeline:live" in line)
    assert "1.00 calls" in live, run.stdout  # each applied entry goes out on the live feed
    assert any("ZADD timeline:{rm}:blue:tl:entity:*" in line for line in lines), run.stdout


def test_the_layout_limit_counts_the_log_beside_the_layout(results: dict[str, object]) -> None:
    figures = results["figures"]
    assert isinstance(figures, dict)
    memory, stream = figures["limit.layout_memory"], figures["limit.stream_memory"]
    assert memory["median"] == pytest.approx(stream["median"] + memory["layout_only"][0], abs=1)
    assert memory["layout_only"][0] > 0
    assert figures["limit.layout_write"]["events"] == 2000


async def test_the_layout_limit_writes_what_the_projection_writes(
        services: Services, redis_url: str) -> None:
    """The limit is a floor only if it writes the same sorted sets and documents
    the projection does: both are built from the same events and compared whole."""
    if is_cluster_url(redis_url):
        pytest.skip("the bench runs against one server: its layout keys share no slot")
    stored = gen.stored_payloads(gen.generate(3000), services.partitions)
    await layout.write(redis_url, layout.batches(stored, size=200))
    projector = Projector(services.read_model)
    decoded = [stored_decoder.decode(e) for e, _ in stored]
    for partition in range(services.partitions):
        await projector.apply(partition, [e for e in decoded if e.partition == partition])
    client = services.client
    namespace = await services.read_model.active()

    async def names(prefix: str) -> set[str]:
        return {k.decode().removeprefix(prefix)
                async for k in client.scan_iter(match=prefix + "*", count=1000)}

    prefix = layout.PREFIX.decode()
    timelines = await names(prefix + "tl:")
    assert timelines == await names(namespace_key(namespace, "tl:"))
    assert len(timelines) > 100 and "all" in timelines
    assert await names(prefix) == {f"tl:{name}" for name in timelines} | {"entries"}
    for name in timelines:
        assert await client.zrange(f"{prefix}tl:{name}", 0, -1, withscores=True) == \
            await client.zrange(namespace_key(namespace, f"tl:{name}"), 0, -1,
                                withscores=True), name
    projected = await client.hgetall(namespace_key(namespace, "entries"))
    assert len(projected) == 3000
    assert await client.hgetall(prefix + "entries") == projected
    assert await client.zcard(namespace_key(namespace, "tl:all")) == 3000
