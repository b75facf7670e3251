"""Every error leaves as JSON `{"error", "message", ...}`: never a stack trace."""

from __future__ import annotations

from typing import Any

import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec

from projections.outages import worth_waiting
from services.log.reader import BadHead

log = structlog.get_logger("http")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        self.status, self.code, self.message, self.extra = status, code, message, extra
        super().__init__(message)


class Problem(msgspec.Struct):
    """One problem of a refused request: which field (`path`) and what is wrong."""

    message: str
    path: str | None = None
    index: int | None = None  # the event's place in a published batch
    id: str | None = None


class ErrorBody(msgspec.Struct):
    """The body of every error answer, as declared in the OpenAPI document."""

    error: str
    message: str
    errors: list[Problem] | None = None
    scope: str | None = None  # 403: the scope the token lacks


_MEANING = {400: "bad request: `errors` names each wrong parameter",
            401: "no token, or not a valid one", 403: "the token lacks the scope named",
            404: "not found", 408: "the body stopped arriving; nothing was written",
            409: "conflict", 413: "the request is too large",
            415: "unsupported content type", 422: "invalid: `errors` names each problem; "
            "nothing was written", 503: "unavailable now: retry after `Retry-After` seconds"}
AUTH = (401, 403)  # every route behind a token can answer these


def responses(*statuses: int, **meaning: str) -> dict[int, ResponseSpec]:
    """OpenAPI declarations of the error answers a route gives (`s409=...` overrides text)."""
    return {status: ResponseSpec(data_container=ErrorBody,
                                 description=meaning.get(f"s{status}", _MEANING[status]))
            for status in statuses}


def error_response(status: int, code: str, message: str, *,
                   headers: dict[str, str] | None = None, **extra: Any) -> Response[Any]:
    headers = dict(headers or {})
    if "retry_after" in extra:
        headers["Retry-After"] = str(extra.pop("retry_after"))
    return Response({"error": code, "message": message, **extra}, status_code=status,
                    headers=headers or None)


def api_error(_: Request[Any, Any, Any], exc: ApiError) -> Response[Any]:
    return error_response(exc.status, exc.code, exc.message, **exc.extra)


_CODES = {400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found",
          405: "method-not-allowed", 413: "too-large", 415: "unsupported-media-type"}


def _named(extra: Any) -> list[dict[str, str]]:
    """The parameters Litestar refused, and why: it lists them in the exception's extra."""
    found = extra if isinstance(extra, list) else []
    return [{"path": str(e["key"]), "message": str(e.get("message", "invalid"))}
            for e in found if isinstance(e, dict) and "key" in e]


def http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    code = _CODES.get(exc.status_code, "error")
    if isinstance(exc, ValidationException):
        return error_response(400, "bad-request", "invalid request parameters",
                              errors=_named(exc.extra) or [{"message": str(exc.detail)}])
    # A 405 carries Litestar's Allow header (RFC 9110 15.5.6: it must)
    return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)


def store_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """A Redis error no route handled: the store unreachable or refusing for a while is
    a 503 to retry (a read, or a write that had not begun), anything else a 500."""
    if not worth_waiting(exc):
        return unexpected(request, exc)
    log.warning("store unavailable", path=request.url.path, error=str(exc))
    return error_response(503, "unavailable", "the store cannot answer now; retry shortly",
                          retry_after=1)


def bad_head(_: Request[Any, Any, Any], exc: BadHead) -> Response[Any]:
    """A tampered chain head met by a route that reads heads (a digest, a position)."""
    return error_response(409, "head-mismatch", f"{exc}: `timeline audit verify` "
                          "reports what the log holds")


def unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error", path=request.url.path)
    return error_response(500, "internal", "the server failed to handle this request")
