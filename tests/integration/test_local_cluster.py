"""The test cluster itself (services/redis/cluster.py): it must start even when a
port it chose is taken before its node binds it (free_port cannot reserve one)."""

from __future__ import annotations

import socket
from pathlib import Path

from services.redis.cluster import LocalCluster


def test_a_node_whose_port_was_taken_starts_again_on_new_ports(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        cluster = LocalCluster(tmp_path / "cluster", masters=1, replicas_per_master=0)
        node = cluster.nodes[0]
        node.bus_port = taken  # as if another socket had taken it after free_port chose it
        try:
            cluster.start()
            assert node.bus_port != taken
            assert node.client().cluster("info")["cluster_state"] == "ok"
        finally:
            cluster.stop()
