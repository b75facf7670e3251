"""docker-compose.yml and the Dockerfile, checked without a Docker engine: the
services are there, configured as DESIGN asks, and every command they run is a
real `timeline` CLI command."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def dockerfile() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    lines: list[str] = []
    current = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        lines.append(current + line)
        current = ""
    return lines


def _instruction(dockerfile: list[str], name: str) -> list[str]:
    """The exec-form argument list of the last `name` instruction."""
    found = [line for line in dockerfile if line.split(None, 1)[0].upper() == name]
    assert found, f"Dockerfile has no {name}"
    value = json.loads(found[-1].split(None, 1)[1])
    assert isinstance(value, list), f"{name} must use the exec (JSON) form"
    return [str(v) for v in value]


def _args(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def _cli_help(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.cli", *args, "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)


def test_services_present(compose: dict[str, Any]) -> None:
    assert {"redis", "api", "worker"} <= set(compose["services"])


def test_redis_keeps_an_append_only_file(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert str(redis["image"]).startswith("redis:7")
    args = _args(redis["command"])
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--appendfsync") + 1] == "everysec"
    assert any(str(v).endswith(":/data") for v in redis["volumes"])


def test_every_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        check = service.get("healthcheck")
        assert check and check.get("test"), f"{name} has no healthcheck"
        assert not check.get("disable"), f"{name} disables its healthcheck"
    assert "redis-cli" in _args(compose["services"]["redis"]["healthcheck"]["test"])
    api_check = " ".join(_args(compose["services"]["api"]["healthcheck"]["test"]))
    assert "http://127.0.0.1:8000/healthz" in api_check


def test_python_healthchecks_compile(compose: dict[str, Any]) -> None:
    """`python -c` checks are valid Python (a typo would leave a service unhealthy)."""
    for name, service in compose["services"].items():
        test = _args(service["healthcheck"]["test"])
        if "python" in test:
            code = test[test.index("-c") + 1]
            compile(code, f"{name} healthcheck", "exec")


def test_worker_runs_two_replicas(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert worker["deploy"]["replicas"] == 2
    assert "container_name" not in worker and "ports" not in worker


def test_app_services_wait_for_a_healthy_redis(compose: dict[str, Any]) -> None:
    for name in ("api", "worker"):
        service = compose["services"][name]
        assert service["depends_on"]["redis"]["condition"] == "service_healthy", name
        assert service["environment"]["TIMELINE_REDIS_URL"] == "redis://redis:6379/0", name
        assert service.get("build") is not None or service.get("image"), name


def test_api_requires_tokens_and_publishes_its_port(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    # Bound to 0.0.0.0, the server refuses to start without tokens: compose must demand them.
    assert api["environment"]["TIMELINE_TOKENS"] == "${TIMELINE_TOKENS:?set TIMELINE_TOKENS}"
    assert "8000:8000" in [str(p) for p in api["ports"]]
    args = _args(api["command"])
    assert args[args.index("--host") + 1] == "0.0.0.0"
    assert args[args.index("--port") + 1] == "8000"


@pytest.mark.parametrize("service", ["api", "worker"])
def test_service_command_is_a_real_cli_command(compose: dict[str, Any], service: str) -> None:
    args = _args(compose["services"][service]["command"])
    done = _cli_help(args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Usage" in done.stdout


def test_unknown_command_is_refused() -> None:
    """The check above can fail: a command the CLI lacks exits non-zero."""
    assert _cli_help(["no-such-command"]).returncode != 0


def test_dockerfile_runs_the_timeline_cli(dockerfile: list[str]) -> None:
    assert _instruction(dockerfile, "ENTRYPOINT") == ["timeline"]
    froms = [line.split()[1] for line in dockerfile if line.upper().startswith("FROM ")]
    assert froms and all(f.startswith("python:3.11-slim") for f in froms)
    user = [line.split()[1] for line in dockerfile if line.upper().startswith("USER ")]
    assert user and user[-1] not in ("root", "0")
    cmd = _instruction(dockerfile, "CMD")
    assert cmd[:1] == ["api"] and "0.0.0.0" in cmd
    done = _cli_help(cmd)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_runtime_image_has_jemalloc_for_the_embedded_server(dockerfile: list[str]) -> None:
    """embedded.py preloads jemalloc only where ldconfig finds it: the runtime stage
    (after the last FROM) must install it, not the build stage."""
    last_from = max(i for i, line in enumerate(dockerfile) if line.upper().startswith("FROM "))
    runs = [line for line in dockerfile[last_from:] if line.upper().startswith("RUN ")]
    assert any("apt-get install" in run and "libjemalloc2" in run.split() for run in runs)


def test_entrypoint_is_the_project_script() -> None:
    """`timeline` in the image is the console script pyproject.toml installs."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["timeline"] == "services.cli.main:main"


def test_dockerignore_keeps_local_state_out() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".venv", ".timeline", ".git"} <= ignored
    assert "tests" in ignored or "tests/artifacts" in ignored
