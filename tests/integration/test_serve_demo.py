"""`timeline serve --demo` as users run it: its own embedded server, API and worker."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from services.redis.embedded import free_port
from tests import processes


def entries(base: str, path: str) -> list[dict[str, object]]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        body = httpx.get(base + path, timeout=5).json()
        if body["entries"]:
            return list(body["entries"])
        time.sleep(0.2)
    raise TimeoutError(path)


def test_serve_demo_tells_the_lg_story(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = processes.env_for(None, TIMELINE_DATA_DIR=str(tmp_path / "data"))
    env.pop("TIMELINE_REDIS_URL", None)
    serve = processes.start(["serve", "--demo", "--port", str(port)], env, tmp_path / "serve.log")
    try:
        processes.wait_http(base, "/readyz", timeout=60, process=serve)
        assert (tmp_path / "data" / "server.url").exists()
        lg_ai = [e["id"] for e in entries(base, "/v1/timelines/entity/lg-ai-research?limit=1000")]
        mou = next(i for i in lg_ai if "mou" in i)
        contract = next(i for i in lg_ai if "contract" in i)
        assert lg_ai.index(mou) < lg_ai.index(contract)
        visits = [e for e in entries(base, "/v1/timelines/entity/lg?type=site.visited")
                  if e["type"] == "site.visited"]
        countries = [e["place"]["country"] for e in visits]  # type: ignore[index]
        assert sorted(countries) == ["CA", "ID", "PL", "US"]
        starts = [e["occurred_start"] for e in visits]
        assert starts == sorted(starts)
        assert countries[0] == "PL" and countries[-1] == "ID"
    finally:
        assert processes.stop(serve) == 0
    assert not (tmp_path / "data" / "server.url").exists()
