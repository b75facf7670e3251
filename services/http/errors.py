"""Every error leaves as JSON `{"error", "message", ...}`: never a stack trace."""

from __future__ import annotations

from typing import Any

import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

log = structlog.get_logger("http")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        self.status, self.code, self.message, self.extra = status, code, message, extra
        super().__init__(message)


def error_response(status: int, code: str, message: str, **extra: Any) -> Response[Any]:
    headers = {"Retry-After": str(extra.pop("retry_after"))} if "retry_after" in extra else None
    return Response({"error": code, "message": message, **extra}, status_code=status,
                    headers=headers)


def api_error(_: Request[Any, Any, Any], exc: ApiError) -> Response[Any]:
    return error_response(exc.status, exc.code, exc.message, **exc.extra)


_CODES = {400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found",
          405: "method-not-allowed", 413: "too-large", 415: "unsupported-media-type"}


def http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    code = _CODES.get(exc.status_code, "error")
    if isinstance(exc, ValidationException):
        return error_response(400, "bad-request", "invalid request parameters",
                              errors=[{"message": str(exc.detail)}])
    return error_response(exc.status_code, code, str(exc.detail))


def unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error", path=request.url.path)
    return error_response(500, "internal", "the server failed to handle this request")
