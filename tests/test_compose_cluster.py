"""docker-compose.yml's `cluster` profile, checked without a Docker engine: six
cluster nodes with AOF, a one-shot create with one replica per master, and the
API and three workers on a `redis+cluster://` URL, started only after the create."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from services import config

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return {name: s for name, s in loaded["services"].items()
            if "cluster" in s.get("profiles", [])}


def test_six_nodes_with_cluster_mode_and_aof(services: dict[str, Any]) -> None:
    nodes = [s for name, s in services.items() if name.startswith("redis-node-")]
    assert len(nodes) == 6
    for node in nodes:
        args = [str(a) for a in node["command"]]
        assert args[args.index("--cluster-enabled") + 1] == "yes"
        assert args[args.index("--cluster-node-timeout") + 1] == "5000"
        assert args[args.index("--appendonly") + 1] == "yes"
        assert any(str(v).endswith(":/data") for v in node["volumes"])
    assert len({tuple(n["volumes"]) for n in nodes}) == 6  # a volume each


def test_create_runs_once_after_every_node_is_healthy(services: dict[str, Any]) -> None:
    create = services["redis-cluster-create"]
    script = " ".join(create["command"])
    assert "--cluster create" in script and "--cluster-replicas 1" in script
    assert script.count(":6379") == 6
    assert {f"redis-node-{i}" for i in range(1, 7)} == set(create["depends_on"])


@pytest.mark.parametrize("name", ["api-cluster", "worker-cluster"])
def test_app_services_use_the_cluster(services: dict[str, Any], name: str) -> None:
    service = services[name]
    dep = service["depends_on"]["redis-cluster-create"]
    assert dep["condition"] == "service_completed_successfully"
    settings = config.load({k: str(v) for k, v in service["environment"].items()
                            if not str(v).startswith("${")})
    assert settings.redis_cluster


def test_three_workers_and_a_durable_api(services: dict[str, Any]) -> None:
    assert services["worker-cluster"]["deploy"]["replicas"] == 3
    api = config.load({"TIMELINE_WRITE_REPLICAS":
                       str(services["api-cluster"]["environment"]["TIMELINE_WRITE_REPLICAS"])})
    assert api.write_replicas == 1
