"""GET / (the page) and /static/... (its script, styles and vendored vis-timeline).

Everything it needs ships in this package: the page works with no network
beyond this server.
"""

from __future__ import annotations

from pathlib import Path

from litestar import Response, get
from litestar.static_files import create_static_files_router

STATIC = Path(__file__).with_name("static")


@get("/", include_in_schema=False, media_type="text/html")
async def page() -> Response[bytes]:
    return Response((STATIC / "index.html").read_bytes(), media_type="text/html",
                    headers={"Cache-Control": "no-cache"})


static_files = create_static_files_router(path="/static", directories=[STATIC],
                                          include_in_schema=False)

ROUTES = [page, static_files]
