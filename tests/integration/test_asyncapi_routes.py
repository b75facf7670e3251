"""`timeline asyncapi` and GET /asyncapi.json serve the same document."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx

from services.asyncapi import document
from tests import processes


def test_cli_prints_the_document() -> None:
    done = subprocess.run([sys.executable, "-m", "services.cli", "asyncapi"], cwd=processes.ROOT,
                          env=processes.env_for(None), capture_output=True, timeout=60,
                          check=True)
    assert json.loads(done.stdout) == document()


def test_http_serves_the_document_for_this_log(http: httpx.Client) -> None:
    response = http.get("/asyncapi.json")
    assert response.status_code == 200
    body = response.json()
    assert body == document(8)
    assert "0 to 7" in body["channels"]["partitionLog"]["parameters"]["tag"]["description"]
