"""Smoke test of the cluster scaling benchmark (`make bench-scaling`): it runs
end to end at a tiny scale on the local cluster and writes valid results. No
timing is asserted: figures on a shared machine say nothing about correctness."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow  # six nodes and three worker processes


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    out = tmp_path_factory.mktemp("bench") / "scaling.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.scaling", "--scale", "1000", "--runs", "1",
         "--workers", "1,2", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    assert "projection, 2 worker(s)" in run.stdout  # the table was printed
    document: dict[str, object] = json.loads(out.read_text())
    return document


def test_rates_cpu_and_memory_are_measured_for_each_worker_count(
        results: dict[str, object]) -> None:
    figures = results["figures"]
    assert isinstance(figures, dict)
    rates = ["append", "projection.1", "projection.2"]
    costs = ["append.cpu", "projection.1.cpu", "projection.2.cpu", "projection.1.cores"]
    for key in rates + costs:
        figure = figures[key]
        assert len(figure["runs"]) == (2 if key.startswith("append") else 1), key
        assert figure["min"] <= figure["median"] <= figure["max"]
        assert figure["median"] > 0, key
    assert figures["projection.2"]["partitions_per_worker"][0]  # who held which leases
    for node in ("m0", "m1", "m2", "r0", "r1", "r2", "masters", "all"):
        assert figures[f"memory.log.{node}"]["unit"] == "bytes/event"
        assert f"memory.read_model.{node}" in figures
    assert figures["memory.log.masters"]["median"] > 0


def test_meta_names_the_command_and_the_cluster_layout(results: dict[str, object]) -> None:
    meta = results["meta"]
    assert isinstance(meta, dict)
    assert meta["command"].startswith("python -m bench.scaling --scale 1000")
    assert meta["scale"] == 1000 and meta["runs"] == 1 and meta["workers"] == [1, 2]
    nodes = meta["cluster"]["nodes"]
    assert [n["role"] for n in nodes] == ["master"] * 3 + ["replica"] * 3
    assert sorted(p for n in nodes for p in n["partitions"]) == list(range(meta["partitions"]))
    assert sum(n["read_model"] for n in nodes) == 1


def test_markdown_renders_the_results(results: dict[str, object], tmp_path: Path) -> None:
    source = tmp_path / "scaling.json"
    source.write_text(json.dumps(results))
    run = subprocess.run([sys.executable, "-m", "bench.scaling", "--markdown", str(source)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stderr
    assert "| projection, 1 worker(s) |" in run.stdout
    assert "| sum over all nodes |" in run.stdout
