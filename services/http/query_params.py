"""A query parameter given twice, on any /v1 route: a 400 naming it.

Which of the two the client meant cannot be told, and taking one would answer
another question. Only `type` (a timeline's filter) is a list.
"""

from __future__ import annotations

from typing import Any

from litestar import Request

from services.http.errors import ApiError

REPEATABLE = frozenset({"type"})
_MESSAGE = "given more than once; only type may repeat"


async def given_once(request: Request[Any, Any, Any]) -> None:
    """Litestar's `before_request`: returning None lets the request through."""
    # scope["path"], not request.url: this runs before every request, pages included,
    # and the URL object is built for nothing else here
    if not request.scope["query_string"] or not request.scope["path"].startswith("/v1/"):
        return
    query = request.query_params
    repeated = sorted({k for k in query if k not in REPEATABLE and len(query.getall(k)) > 1})
    if repeated:
        raise ApiError(400, "bad-request", f"{', '.join(repeated)}: {_MESSAGE}",
                       errors=[{"path": k, "message": _MESSAGE} for k in repeated])
