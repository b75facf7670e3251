"""Query parameters on /v1 routes: each one the route documents, and given once.

An unknown parameter is a 400 naming it: a typo in a filter (`form=` for `from=`,
`limt=`) would otherwise answer a question nobody asked, the whole timeline, with
a 200. What a route takes is what its OpenAPI operation lists (`/schema`), so the
check and the documentation cannot drift apart. A parameter given twice is a 400
too: which of the two the client meant cannot be told, and taking one would answer
another question. Only `type` (a timeline's filter) is a list.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.enums import ParamType

from services.http.errors import ApiError

REPEATABLE = frozenset({"type"})
_REPEATED = "given more than once; only type may repeat"
# (path template, method) -> the query parameters its operation documents; None for a
# route the schema leaves out, which is not checked. Filled on first use: the schema is
# built once per app, and every app of this service has the same routes.
_documented: dict[tuple[str, str], frozenset[str] | None] = {}


def documented(request: Request[Any, Any, Any]) -> frozenset[str] | None:
    key = (request.scope.get("path_template", ""), request.scope["method"].lower())
    if key not in _documented:
        paths = request.app.openapi_schema.paths or {}
        item = paths.get(key[0])
        operation = getattr(item, key[1], None) if item is not None else None
        _documented[key] = None if operation is None else frozenset(
            p.name for p in operation.parameters or []
            if getattr(p, "param_in", None) == ParamType.QUERY)
    return _documented[key]


async def given_once(request: Request[Any, Any, Any]) -> None:
    """Litestar's `before_request`: returning None lets the request through."""
    # scope["path"], not request.url: this runs before every request, pages included,
    # and the URL object is built for nothing else here
    if not request.scope["query_string"] or not request.scope["path"].startswith("/v1/"):
        return
    query = request.query_params
    known = documented(request)
    errors = [{"path": k, "message": _unknown(known)} for k in sorted(query)
              if known is not None and k not in known]
    errors += [{"path": k, "message": _REPEATED} for k in sorted(query)
               if k not in REPEATABLE and len(query.getall(k)) > 1
               and (known is None or k in known)]
    if errors:
        detail = "; ".join(f"{e['path']}: {e['message']}" for e in errors)
        raise ApiError(400, "bad-request", detail, errors=errors)


def _unknown(known: frozenset[str]) -> str:
    takes = ", ".join(sorted(known)) if known else "none"
    return f"not a parameter of this route (it takes: {takes})"
