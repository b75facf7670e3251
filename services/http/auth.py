"""Bearer-token auth for every route, decided in one place (DESIGN 4).

One ASGI middleware, registered once in `create_app`, checks each request
against a table of path prefixes → required scope, so a route module never
has to remember to protect itself. The table fails closed: a /v1 route that no
rule names is refused to every token, and a test checks that every route the
app serves has an expectation.

The principal lands in `scope["user"]` (`request.user` in Litestar): the token
name, or `anonymous` when no tokens are configured (auth off).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from litestar.openapi.spec import SecurityScheme
from litestar.types import ASGIApp, Receive, Scope, Send

from services.auth.tokens import ANONYMOUS, Token, authenticate

# Open to everyone: probes, metrics scrapers, the API descriptions and the page.
OPEN = ("/", "/healthz", "/readyz", "/metrics", "/favicon.ico", "/asyncapi.json")
OPEN_PREFIXES = ("/schema", "/static", "/assets")
READING = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class Rule:
    prefix: str  # matches the path itself and anything below it (segment-wise)
    methods: frozenset[str] | None  # None: every method
    scope: str


# First match wins.
RULES = (
    Rule("/v1/events", frozenset({"POST"}), "publish"),
    Rule("/v1/audit", None, "audit"),
    Rule("/v1/timelines", READING, "read"),
    Rule("/v1/events", READING, "read"),
    Rule("/v1/entities", READING, "read"),
    Rule("/v1/live", READING, "read"),
)
DENY = "(none)"  # a route no rule grants: refused to every token

# The OpenAPI description of this scheme (app.py), so clients and test generators
# know to send the token. OpenAPI has no scopes for plain bearer tokens: they are
# named in the description.
SCHEME = "bearer"
SECURITY_SCHEME = SecurityScheme(
    type="http", scheme="bearer",
    description="Authorization: Bearer <token>. A token carries scopes: `publish` "
                "(POST /v1/events), `read` (GET timelines, events, entities, live), `audit` "
                "(/v1/audit/...). Missing or bad token: 401; wrong scope: 403. With no tokens "
                "configured auth is off.")
OPEN_SECURITY: list[dict[str, list[str]]] = [{}]  # an operation anyone may call


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


def required_scope(method: str, path: str) -> str | None:
    """The scope a request needs, None when the path is open, DENY when nothing grants it."""
    if path in OPEN or any(_under(path, p) for p in OPEN_PREFIXES):
        return None
    for rule in RULES:
        if _under(path, rule.prefix) and (rule.methods is None or method in rule.methods):
            return rule.scope
    return DENY


def bearer_secret(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            kind, _, secret = value.decode("latin-1").strip().partition(" ")
            secret = secret.strip()
            return secret if kind.lower() == "bearer" and secret else None
    return None


_json = msgspec.json.Encoder()


async def _refuse(send: Send, status: int, body: dict[str, Any], challenge: str) -> None:
    payload = _json.encode(body)
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"www-authenticate", challenge.encode()),
    ]})
    await send({"type": "http.response.body", "body": payload})


def _decide(tokens: tuple[Token, ...], scope: Scope) -> tuple[int, dict[str, Any], str] | None:
    """None when the request may go on (scope["user"] set), else the refusal."""
    path = scope.get("path_template") or scope["path"]
    needed = required_scope(scope.get("method", "GET"), path)
    secret = bearer_secret(scope)
    token = authenticate(tokens, secret) if secret else None
    scope["user"] = token.name if token else ANONYMOUS
    scope["auth"] = token
    if needed is None:
        return None
    if token is None:
        message = ("a valid token is required: Authorization: Bearer <token>" if secret is None
                   else "the token is not valid")
        challenge = 'Bearer realm="timeline"' + ("" if secret is None
                                                 else ', error="invalid_token"')
        return 401, {"error": "unauthorized", "message": message}, challenge
    if needed == DENY or not token.allows(needed):
        message = (f"this token lacks the {needed!r} scope" if needed != DENY
                   else "no scope grants access to this route")
        return 403, {"error": "forbidden", "message": message, "scope": needed}, (
            f'Bearer realm="timeline", error="insufficient_scope", scope="{needed}"')
    return None


def middleware(tokens: tuple[Token, ...]) -> Any:
    """The middleware factory for `Litestar(middleware=[...])`; no tokens: auth off."""

    def factory(app: ASGIApp) -> ASGIApp:
        async def authenticate_request(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] not in ("http", "websocket"):
                await app(scope, receive, send)
                return
            if not tokens:
                scope["user"] = ANONYMOUS
                scope["auth"] = None
                await app(scope, receive, send)
                return
            refusal = _decide(tokens, scope)
            if refusal is None:
                await app(scope, receive, send)
            elif scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            else:
                await _refuse(send, *refusal)

        return authenticate_request

    return factory


def principal(request: Any) -> str:
    """Who made this request: the token name, or `anonymous` with auth off."""
    user: str = request.scope["user"]
    return user
