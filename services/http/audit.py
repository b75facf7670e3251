"""/v1/audit/...: verify, digest, raw log and replay (DESIGN 4). Scope `audit`
(services/http/auth.py grants /v1/audit by prefix)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Request, get, post
from litestar.openapi.spec import OpenAPIMediaType, Operation, Reference, RequestBody
from litestar.params import FromQuery

from events.codec import UNREADABLE
from services.audit import digest as digests
from services.audit import rawlog
from services.audit.parallel import HelperFailed
from services.audit.replay import ReplayError, ReplayReport, ReplayRunning, replay
from services.audit.verify import Report, verify
from services.bootstrap import helpers_for
from services.http.bodies import read_body
from services.http.deps import ServicesDep
from services.http.errors import AUTH, ApiError, responses


def _int_param(name: str, raw: str | None, default: int | None, low: int, high: int) -> int:
    if raw is None or raw == "":
        if default is None:
            raise ApiError(400, "bad-request", f"{name} is required",
                           errors=[{"path": name, "message": "required"}])
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        message = f"must be an integer from {low} to {high}"
        raise ApiError(400, "bad-request", f"{name} {message}",
                       errors=[{"path": name, "message": message}])
    return int(raw)


def _flag(name: str, raw: str | None) -> bool:
    value = (raw or "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise ApiError(400, "bad-request", f"{name} must be true or false",
                       errors=[{"path": name, "message": "must be true or false"}])
    return value in ("true", "1")


@dataclass
class DigestBodyOperation(Operation):
    """POST /v1/audit/verify reads its body raw (to answer 422 naming the field), so
    the operation declares it: a digest as GET /v1/audit/digest returns it."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(required=True, content={"application/json": (
            OpenAPIMediaType(schema=Reference(ref="#/components/schemas/Digest")))})


@get("/v1/audit/verify", summary="Recompute every partition's hash chain from the raw log",
     responses=responses(*AUTH))
async def verify_log(services: ServicesDep) -> Report:
    return await verify(services.client)


@post("/v1/audit/verify", status_code=200,
      summary="Verify the log and that it still extends a saved digest (the request body)",
      responses=responses(400, *AUTH, 422), operation_class=DigestBodyOperation)
async def verify_against_digest(request: Request[Any, Any, Any], services: ServicesDep) -> Report:
    try:
        raw = msgspec.json.decode(await read_body(request))  # a stalled body: 408
    except UNREADABLE as exc:
        raise ApiError(400, "malformed-json", f"the body is not valid JSON: {exc}") from None
    try:
        digest = digests.parse(raw)
        signature = digests.check_signature(digest, services.settings.digest_key)
    except digests.BadDigest as exc:
        code = "bad-signature" if exc.path == "signature" else "bad-digest"
        raise ApiError(422, code, f"digest refused: {exc.message}",
                       errors=[{"path": exc.path, "message": exc.message}]) from None
    return await verify(services.client, digest, signature)


@get("/v1/audit/digest", summary="Per-partition chain heads, signed with TIMELINE_DIGEST_KEY",
     responses=responses(*AUTH, 409, s409="a stored chain head is not one, or not what its "
                         "log holds (`head-mismatch`, naming the partition), or a restore is "
                         "unfinished (`restore-unfinished`): no digest"))
async def digest(services: ServicesDep) -> digests.Digest:
    try:
        return await digests.build(services.client, services.partitions,
                                   services.settings.digest_key)
    except digests.RestoreUnfinished as exc:
        raise ApiError(409, "restore-unfinished", f"no digest issued: {exc}") from None


@get("/v1/audit/log", summary="Raw stored events of one partition after a sequence, with hashes",
     responses=responses(400, *AUTH))
async def raw_log(
    services: ServicesDep, partition: FromQuery[str | None] = None,
    after: FromQuery[str | None] = None, limit: FromQuery[str | None] = None,
) -> rawlog.RawPage:
    number = _int_param("partition", partition, None, 0, services.partitions - 1)
    start = _int_param("after", after, 0, 0, 10**15)
    count = _int_param("limit", limit, 1000, 1, rawlog.MAX_LIMIT)
    return await rawlog.read_page(services.client, number, start, count)


@post("/v1/audit/replay", status_code=200,
      summary="Rebuild the projections from the log into a shadow copy and compare; "
              "promote=true switches reads to the rebuild",
      responses=responses(400, *AUTH, 409, 503, s409="a replay is already running, or the "
                          "log cannot be replayed", s503="a rebuild helper process failed (it "
                          "lost the server, or was killed): nothing was changed"))
async def replay_log(
    services: ServicesDep, promote: FromQuery[str | None] = None
) -> ReplayReport:
    switch = _flag("promote", promote)
    try:
        return await replay(services.client, services.partitions, promote=switch,
                            helpers=helpers_for(services))
    except ReplayRunning as exc:
        raise ApiError(409, "replay-running", str(exc)) from None
    except ReplayError as exc:
        raise ApiError(409, "log-not-replayable", str(exc)) from None
    except HelperFailed as exc:
        raise ApiError(503, "replay-failed", f"{exc}; the rebuild was dropped and nothing "
                       "was changed: run the replay again") from None


ROUTES = [verify_log, verify_against_digest, digest, raw_log, replay_log]
