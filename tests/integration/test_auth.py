"""Auth over a real `timeline api` process started with tokens: the 401/403
matrix for every route the app serves and every scope, `recordedby`, and the
refusals at startup."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from services.auth.tokens import digest_of
from services.log import keys
from services.redis.embedded import free_port
from tests import processes
from tests.conftest import sync_client

SECRETS = {"publisher": "pub-secret-1", "reader": "read-secret-2",
           "auditor": "audit-secret-3", "root": "root-secret-4"}
SCOPES = {"publisher": ["publish"], "reader": ["read"], "auditor": ["audit"],
          "root": ["publish", "read", "audit"]}
ALL_SCOPES = ("publish", "read", "audit")


def entry(name: str) -> str:
    return f"{name}:{'+'.join(SCOPES[name])}:{digest_of(SECRETS[name])}"


class AuthApi:
    def __init__(self, base: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.base, self.process, self.log = base, process, log


@pytest.fixture(scope="module")
def auth_api(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthApi]:
    """A real API with two tokens from TIMELINE_TOKENS and two from a tokens file."""
    folder = tmp_path_factory.mktemp("auth")
    with sync_client(server_url) as client:  # an earlier module may leave another log
        client.flushdb()
    tokens_file = folder / "tokens"
    tokens_file.write_text(f"# auditors\n{entry('auditor')}  # the external verifier\n\n"
                           f"{entry('root')}\n")
    port, log = free_port(), folder / "api.log"
    env = processes.env_for(server_url, TIMELINE_TOKENS=f"{entry('publisher')},{entry('reader')}",
                            TIMELINE_TOKENS_FILE=str(tokens_file))
    process = processes.start(["api", "--port", str(port)], env, log)
    base = f"http://127.0.0.1:{port}"
    processes.wait_http(base, process=process)
    yield AuthApi(base, process, log)
    assert processes.stop(process) == 0


def expected_scope(method: str, path: str) -> str | None:
    """DESIGN 4, restated independently of the middleware's table."""
    segments = path.strip("/").split("/")
    if path in ("/", "/healthz", "/readyz", "/metrics", "/asyncapi.json") or segments[0] in (
            "schema", "static"):
        return None
    if segments[:2] == ["v1", "audit"]:
        return "audit"
    if (method, path) == ("POST", "/v1/events"):
        return "publish"
    if method == "GET" and segments[0] == "v1" and segments[1] in (
            "timelines", "events", "entities", "live"):
        return "read"
    raise AssertionError(f"no auth expectation for {method} {path}: say which scope it needs "
                         "here and in services/http/auth.py")


def mou(ident: str) -> dict[str, Any]:
    return {"specversion": "1.0", "id": ident, "source": "urn:test:auth", "type": "mou.signed",
            "subject": "lg", "occurred": "2023-12",
            "data": {"parties": [{"id": "lg"}, {"id": "jax"}]}}


def routes(base: str) -> list[tuple[str, str]]:
    schema = httpx.get(base + "/schema/openapi.json", timeout=10)
    assert schema.status_code == 200, "the API description is open"
    found = [(method.upper(), path) for path, ops in schema.json()["paths"].items()
             for method in ops if method in ("get", "post", "put", "patch", "delete")]
    for known in [("POST", "/v1/events"), ("GET", "/v1/events"),
                  ("GET", "/v1/timelines/all"), ("GET", "/healthz")]:
        assert known in found, f"{known} missing from the API description"
    return [*found, ("GET", "/schema/openapi.json")]


def status_of(base: str, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    """Only the status and headers: /v1/live streams forever once allowed."""
    url = base + re.sub(r"\{[^}]+\}", "org-1", path)
    body = msgspec.json.encode(mou(f"m-{len(headers)}")) if method == "POST" else None
    with httpx.stream(method, url, headers={"content-type": "application/json", **headers},
                      content=body, timeout=30) as response:
        if response.status_code in (401, 403):
            response.read()
        return response


def bearer(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


def test_every_route_answers_401_403_or_passes_by_scope(auth_api: AuthApi, worker: object) -> None:
    """With a worker running, so an allowed replay finds the projection caught up."""
    checked = 0
    for method, path in routes(auth_api.base):
        needed = expected_scope(method, path)
        if needed is None:
            for headers in ({}, bearer("wrong")):
                response = status_of(auth_api.base, method, path, headers)
                assert response.status_code not in (401, 403), (method, path, headers)
            continue
        for headers in ({}, bearer("wrong"), {"authorization": f"Basic {SECRETS['root']}"},
                        {"authorization": "Bearer"}, bearer(digest_of(SECRETS["root"]))):
            response = status_of(auth_api.base, method, path, headers)
            assert response.status_code == 401, (method, path, headers)
            assert response.headers["www-authenticate"].startswith("Bearer")
            body = response.json()
            assert body["error"] == "unauthorized" and body["message"], body
        for name, secret in SECRETS.items():
            response = status_of(auth_api.base, method, path, bearer(secret))
            if needed in SCOPES[name]:
                assert response.status_code not in (401, 403), (method, path, name)
            else:
                assert response.status_code == 403, (method, path, name)
                assert response.json()["error"] == "forbidden"
                assert response.json()["scope"] == needed
                assert "insufficient_scope" in response.headers["www-authenticate"]
            checked += 1
    assert checked >= 4 * 5


def test_the_scheme_is_case_insensitive_and_scopes_combine(auth_api: AuthApi,
                                                           redis_url: str) -> None:
    with httpx.Client(base_url=auth_api.base, timeout=30) as client:
        lower = client.get("/v1/timelines/all", headers={"authorization": "bearer "
                                                         + SECRETS["reader"]})
        assert lower.status_code == 200
        for scope_needed, call in [
            ("read", lambda h: client.get("/v1/timelines/all", headers=h)),
            ("publish", lambda h: client.post("/v1/events", json=mou("c1"), headers=h)),
        ]:
            assert call(bearer(SECRETS["root"])).status_code == 200, scope_needed


def test_recordedby_is_the_token_name(auth_api: AuthApi, sync_redis: redis.Redis) -> None:
    with httpx.Client(base_url=auth_api.base, timeout=30) as client:
        for ident, name in (("by-pub", "publisher"), ("by-root", "root")):
            response = client.post("/v1/events", json=mou(ident), headers=bearer(SECRETS[name]))
            assert response.status_code == 200
            [result] = response.json()["results"]
            raw = sync_redis.xrange(keys.log(result["partition"]), f"{result['sequence']}-0",
                                    f"{result['sequence']}-0")
            stored = msgspec.json.decode(raw[0][1][b"event"])
            assert (stored["id"], stored["recordedby"]) == (ident, name)


def test_a_refused_publish_writes_nothing(auth_api: AuthApi, sync_redis: redis.Redis) -> None:
    with httpx.Client(base_url=auth_api.base, timeout=30) as client:
        for headers in ({}, bearer(SECRETS["reader"])):
            assert client.post("/v1/events", json=mou("no"), headers=headers).status_code in (
                401, 403)
    assert sum(int(sync_redis.xlen(keys.log(p))) for p in range(8)) == 0


def test_secrets_never_reach_the_log(auth_api: AuthApi, redis_url: str) -> None:
    with httpx.Client(base_url=auth_api.base, timeout=30) as client:
        for secret in (*SECRETS.values(), "wrong-but-secret-looking"):
            client.get("/v1/timelines/all", headers=bearer(secret))
    text = auth_api.log.read_text()
    assert '"principal": "reader"' in text or '"principal":"reader"' in text
    for secret in (*SECRETS.values(), "wrong-but-secret-looking"):
        assert secret not in text
        assert digest_of(secret) not in text


def test_auth_off_records_anonymous(http: httpx.Client, sync_redis: redis.Redis) -> None:
    response = http.post("/v1/events", json=mou("anon"))
    assert response.status_code == 200
    [result] = response.json()["results"]
    raw = sync_redis.xrange(keys.log(result["partition"]), "-", "+")
    assert msgspec.json.decode(raw[0][1][b"event"])["recordedby"] == "anonymous"


def run_cli(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    full = processes.env_for(None, **env)
    for name in ("TIMELINE_TOKENS", "TIMELINE_TOKENS_FILE"):
        if name not in env:
            full.pop(name, None)
    return subprocess.run([sys.executable, "-m", "services.cli", *args], env=full,
                          cwd=processes.ROOT, capture_output=True, text=True, timeout=60)


def test_bad_token_configuration_refuses_to_start(tmp_path: Path) -> None:
    bad = run_cli(["api", "--port", "1"], TIMELINE_TOKENS="ci:publish:raw-secret-pasted")
    assert bad.returncode == 2
    said = " ".join(bad.stderr.split())  # rich wraps lines
    assert "TIMELINE_TOKENS entry 1" in said and "sha256" in said
    assert "raw-secret-pasted" not in bad.stderr + bad.stdout
    missing = run_cli(["api", "--port", "1"], TIMELINE_TOKENS_FILE=str(tmp_path / "nope"))
    assert missing.returncode == 2 and "cannot read it" in " ".join(missing.stderr.split())


def test_no_tokens_refuses_a_public_address(tmp_path: Path) -> None:
    refused = run_cli(["api", "--host", "0.0.0.0", "--port", "1"])
    assert refused.returncode == 2, refused.stderr
    assert "refusing to bind 0.0.0.0" in " ".join(refused.stderr.split())
    # A file naming no token is a mistake to say, not "auth off" (even on loopback).
    only_comments = tmp_path / "tokens"
    only_comments.write_text("# nobody yet\n")
    emptied = run_cli(["api", "--port", "1"], TIMELINE_TOKENS_FILE=str(only_comments))
    assert emptied.returncode == 2, emptied.stderr
    assert "is set but names no token" in " ".join(emptied.stderr.split())


@pytest.mark.parametrize("variable", ["TIMELINE_TOKENS", "TIMELINE_TOKENS_FILE"])
def test_a_token_variable_set_but_empty_refuses_to_start(variable: str) -> None:
    """`VAR=""` was taken for unset: auth off, and a public address refused only for that."""
    for args in (["api", "--port", "1"], ["api", "--host", "0.0.0.0", "--port", "1"]):
        refused = run_cli(args, **{variable: ""})
        assert refused.returncode == 2, refused.stderr
        said = " ".join(refused.stderr.split())
        assert f"token configuration error: {variable} is set but names no token" in said
        assert "(it is empty)" in said


def test_a_request_no_route_matches_is_logged_and_counted(auth_api: AuthApi) -> None:
    """The request log ran only around matched routes: 404s and 405s left no trace."""
    with httpx.Client(base_url=auth_api.base, timeout=30) as client:
        assert client.get("/no-such-route").status_code == 404
        assert client.post("/metrics").status_code == 405
        exposition = client.get("/metrics").text
    lines = [json.loads(line) for line in auth_api.log.read_text().splitlines()
             if line.startswith("{") and '"request"' in line]
    seen = {(e["method"], e["path"], e["status"]) for e in lines if e.get("event") == "request"}
    assert {("GET", "/no-such-route", 404), ("POST", "/metrics", 405)} <= seen
    counted = {(s.labels["method"], s.labels["route"], s.labels["status"])
               for f in text_string_to_metric_families(exposition) for s in f.samples
               if s.name == "timeline_http_request_duration_seconds_count"}
    assert {("GET", "unmatched", "404"), ("POST", "unmatched", "405")} <= counted
