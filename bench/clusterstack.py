"""What the scaling benchmark runs against: the local 6-node cluster the tests
use (services/redis/cluster.py), real `timeline worker` processes, and the
per-node accounting (memory, CPU) the figures are made of."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from redis.crc import key_slot

from bench.profile import cpu_seconds
from bench.stack import ROOT
from projections.lease import lease_key
from projections.runner import PROJECTION
from projections.store import TAG
from services import subprocesses
from services.log import keys
from services.redis.cluster import LocalCluster, Node
from services.redis.embedded import MEMORY_SETTINGS, die_with_parent

PARTITIONS = 8
RM_PROBE = f"timeline:{TAG}:applied".encode()  # any read-model key: they share one slot
SETTLE_SECONDS = 60.0  # lazy frees and replication catch up in well under this
WORKER_GRACE = 20.0  # a stopping worker finishes its batch in hand first


@dataclass(frozen=True)
class NodeInfo:
    """One node as the figures name it: `m0`..`m2` masters, `r0`..`r2` their replicas."""

    name: str
    node: Node
    role: str
    slots: str  # "0-5460" for a master, the master's name for a replica
    partitions: list[int]  # the `{pN}` log partitions a master owns
    read_model: bool  # whether it owns the read model's `{rm}` slot


class ClusterStack:
    """Start with `with ClusterStack(workdir) as stack:`; every node is stopped by pid."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        # the single-server benchmark's server settings, so memory compares
        self.cluster = LocalCluster(workdir / "cluster", server_args=MEMORY_SETTINGS)
        self._layout: list[NodeInfo] = []

    def __enter__(self) -> ClusterStack:
        self.cluster.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cluster.stop()

    @property
    def url(self) -> str:
        return self.cluster.url

    @property
    def nodes(self) -> list[Node]:
        return self.cluster.nodes

    def layout(self) -> list[NodeInfo]:
        """Which master owns which slots, log partitions and the read model (asked
        once: the benchmark kills no node, so roles stay). Masters from CLUSTER
        SLOTS, replicas from their own INFO: gossip may not have told every node
        about every replica yet."""
        if self._layout:
            return self._layout
        first = self.cluster.masters[0].client()
        ranges = first.execute_command("CLUSTER", "SLOTS")  # type: ignore[no-untyped-call]
        by_port = {node.port: node for node in self.nodes}
        masters: dict[int, NodeInfo] = {}
        for low, high, primary, *_ in sorted(ranges):
            slots = range(int(low), int(high) + 1)
            owned = [p for p in range(PARTITIONS) if key_slot(keys.head(p).encode()) in slots]
            port = int(primary[1])
            masters[port] = NodeInfo(f"m{len(masters)}", by_port[port], "master",
                                     f"{low}-{high}", owned, key_slot(RM_PROBE) in slots)
        replicas = []
        for node in self.nodes:
            if node.port not in masters:
                master = masters[int(node.client().info("replication")["master_port"])]
                replicas.append(NodeInfo(f"r{master.name[1:]}", node, "replica", master.name,
                                         [], False))
        self._layout = [*masters.values(), *sorted(replicas, key=lambda n: n.name)]
        return self._layout

    def flush(self) -> None:
        """Empty every master (synchronously: memory is measured next) and let the
        replicas follow."""
        for node in self.cluster.masters:
            node.client().execute_command("FLUSHALL", "SYNC")  # type: ignore[no-untyped-call]
        self.settle()

    def settle(self) -> None:
        """Wait until background frees are done and every replica has every write."""
        deadline = time.monotonic() + SETTLE_SECONDS
        while not self._settled():
            if time.monotonic() > deadline:
                raise TimeoutError("the cluster did not settle (lazy free or replication)")
            time.sleep(0.05)

    def _settled(self) -> bool:
        for node in self.nodes:
            if node.client().info("memory").get("lazyfree_pending_objects"):
                return False
        for node in self.cluster.masters:
            info = node.client().info("replication")
            offset = info["master_repl_offset"]
            replicas = [v for k, v in info.items() if k.startswith("slave")
                        and isinstance(v, dict)]
            if not replicas or any(r["offset"] != offset for r in replicas):
                return False
        return True

    def data_memory(self) -> dict[str, int]:
        """Every node's INFO `used_memory` less its buffers, by name. The replication
        backlog (10 MB by default in Valkey) fills up over the first appends and then
        stays full: counted, it would charge the first run ~10 MB more than the others."""
        return {n.name: _data_bytes(n.node.client().info("memory")) for n in self.layout()}

    def node_cpu(self) -> dict[str, float]:
        """CPU seconds each node process has used so far."""
        out = {}
        for n in self.layout():
            assert n.node.process is not None
            out[n.name] = cpu_seconds(n.node.process.pid)
        return out

    def lease_owners(self) -> dict[int, str]:
        """Which worker holds each partition's lease now ("" when none does)."""
        client = redis.RedisCluster.from_url(self.cluster.seed_url, decode_responses=True)
        try:
            return {p: str(client.get(lease_key(p, PROJECTION)) or "")
                    for p in range(PARTITIONS)}
        finally:
            client.close()

    def env(self) -> dict[str, str]:
        return {**os.environ, "TIMELINE_REDIS_URL": self.url, "TIMELINE_LOG_FORMAT": "json",
                "TIMELINE_PARTITIONS": str(PARTITIONS)}

    def spawn_worker(self, index: int) -> subprocess.Popen[bytes]:
        with (self.workdir / f"worker{index}.log").open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "services.cli", "worker"], env=self.env(), cwd=ROOT,
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=die_with_parent)

    def stop_workers(self, workers: list[subprocess.Popen[bytes]]) -> None:
        for worker in workers:  # all at once: each finishes its batch in parallel
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in workers:
            subprocesses.stop(worker, grace=WORKER_GRACE)

    def log_tail(self, index: int, lines: int = 15) -> str:
        try:
            text = (self.workdir / f"worker{index}.log").read_text(errors="replace")
        except FileNotFoundError:
            return f"(no worker{index}.log)"
        return "\n".join(text.splitlines()[-lines:])


def _data_bytes(info: dict[str, Any]) -> int:
    # the total of the replication buffers is shared by the backlog and the replicas'
    # output buffers: older servers report only the two parts
    replication = info.get("mem_total_replication_buffers")
    if replication is None:
        replication = info.get("mem_replication_backlog", 0) + info.get("mem_clients_slaves", 0)
    buffers = (int(replication) + int(info.get("mem_clients_normal", 0))
               + int(info.get("mem_aof_buffer", 0)) + int(info.get("mem_cluster_links", 0)))
    return int(info["used_memory"]) - buffers
