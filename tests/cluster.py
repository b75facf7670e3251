"""The local 6-node Redis Cluster the tests run on: it lives in
services/redis/cluster.py so the benchmark (bench/scaling.py) starts the same one."""

from services.redis.cluster import NODE_TIMEOUT_MS, SLOTS, LocalCluster, Node

__all__ = ["NODE_TIMEOUT_MS", "SLOTS", "LocalCluster", "Node"]
