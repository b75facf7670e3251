"""schemathesis against a real `timeline api` with auth on, a worker running and
some events in the log: for every operation of /schema/openapi.json, generated
valid and invalid inputs must never get a 5xx, and every answer must have a
status the document declares and a body that matches its declared schema.

Every failure is collected (not just the first) so one run lists all of them;
the figures go to docs/reliability.md.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.auth.tokens import digest_of
from services.redis.embedded import free_port
from tests import factory, processes, reliability_report
from tests.conftest import is_cluster_url

SECRET = "schemathesis-secret"
TOKEN = f"fuzzer:publish+read+audit:{digest_of(SECRET)}"
AUTH = {"Authorization": f"Bearer {SECRET}"}
EXAMPLES = 35  # per operation and generation mode: ~1,000 requests, 25-45 s
# The inputs are derandomized, so the cluster run would repeat the single server's:
# its first 20 reach the backend's paths, and the suite keeps under 20 minutes.
CLUSTER_EXAMPLES = 20
# /v1/live answers a stream that only ends when the client leaves: requests (what
# schemathesis calls with) would wait for it forever. Its parameter errors are
# covered by tests/integration/test_live.py.
SKIPPED = {"GET /v1/live"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.fixture
def secured_api(redis_url: str, logs_dir: Any) -> Iterator[str]:
    port = free_port()
    env = processes.env_for(redis_url, TIMELINE_TOKENS=TOKEN)
    api = processes.start(["api", "--port", str(port)], env, logs_dir / "schemathesis-api.log")
    base = f"http://127.0.0.1:{port}"
    try:
        processes.wait_http(base, process=api)
        yield base
    finally:
        assert processes.stop(api) == 0


def seed(base: str) -> None:
    """Real entries, so timeline and lookup answers carry bodies worth checking."""
    rng = random.Random(7)
    events = [factory.event(i, rng) for i in range(120)]
    with httpx.Client(base_url=base, headers=AUTH, timeout=30) as client:
        answer = client.post("/v1/events", json=events)
        assert answer.status_code == 200, answer.text
        deadline = time.monotonic() + 30
        while len(client.get("/v1/timelines/all", params={"limit": 1000}).json()["entries"]) < 120:
            assert time.monotonic() < deadline, "the worker did not project the seed"
            time.sleep(0.1)


def test_the_schema_declares_the_bearer_scheme(secured_api: str) -> None:
    schema = httpx.get(secured_api + "/schema/openapi.json", timeout=10).json()
    scheme = schema["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert "publish" in scheme["description"] and "audit" in scheme["description"]
    assert schema["security"] == [{"bearer": []}]
    assert schema["paths"]["/healthz"]["get"]["security"] == [{}]  # open routes say so
    assert "security" not in schema["paths"]["/v1/events"]["post"]  # the global one applies


def fuzz(operation: Any, mode: schemathesis.GenerationMode, base: str, examples: int,
         statuses: Counter[int], failures: dict[str, str]) -> None:
    label = f"{operation.method.upper()} {operation.path}"

    @hypothesis.settings(max_examples=examples, deadline=None, database=None,
                         derandomize=True, phases=[Phase.explicit, Phase.generate],
                         suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        response = case.call(base_url=base, headers=AUTH, timeout=30)
        statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=AUTH)
        except (Failure, FailureGroup) as exc:
            found = exc.exceptions if isinstance(exc, FailureGroup) else (exc,)
            for failure in found:
                kind = f"{label} → {response.status_code}: {failure.title}"
                failures.setdefault(kind, f"{case.as_curl_command(headers=AUTH)}\n"
                                          f"{failure.message[:1500]}")

    try:
        run()
    except hypothesis.errors.Unsatisfiable:
        # No parameters and no body: nothing can be made invalid (GET /healthz, ...).
        assert mode == schemathesis.GenerationMode.NEGATIVE, label


def test_schemathesis_finds_no_5xx_and_no_schema_mismatch(
    secured_api: str, worker: object, redis_url: str
) -> None:
    on_cluster = is_cluster_url(redis_url)
    examples = CLUSTER_EXAMPLES if on_cluster else EXAMPLES
    seed(secured_api)
    schema = schemathesis.openapi.from_url(secured_api + "/schema/openapi.json", timeout=10)
    statuses: Counter[int] = Counter()
    failures: dict[str, str] = {}  # one example per (operation, failure kind)
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        if label in SKIPPED:
            continue
        operations += 1
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            fuzz(operation, mode, secured_api, examples, statuses, failures)
    tried = sum(statuses.values())
    server_errors = sum(n for status, n in statuses.items() if status >= 500)
    print(f"schemathesis: {tried} inputs over {operations} operations; statuses "
          f"{dict(sorted(statuses.items()))}")
    assert not failures, "\n\n".join(f"{k}\n{v}" for k, v in failures.items())
    assert server_errors == 0
    assert operations >= 15 and tried >= operations * examples
    if on_cluster:  # the report gives the single server's run, the one with every input
        return
    reliability_report.record("tests/integration/test_schemathesis.py", {
        "schemathesis against /schema/openapi.json, auth on, worker running": {
            "operations fuzzed (all but the endless /v1/live stream)": operations,
            "inputs tried (valid and invalid; a token of every scope, except where "
            "schemathesis sends a missing or bad one: the 401s)": tried,
            "answers with 5xx": server_errors,
            "answers whose status or body did not match the document": len(failures),
            "statuses seen": ", ".join(f"{s}×{n}" for s, n in sorted(statuses.items())),
        }})
