"""API tokens (DESIGN 4): parsing the configuration and checking a presented secret.

An entry is `name:scope+scope:sha256hex-of-secret`. Only the digest of a
secret is ever configured, so a leaked configuration does not leak access.
Errors name the entry's position and what is wrong with it, never its value:
someone who pasted a raw secret where the digest belongs must not find it in
a log.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from pathlib import Path

SCOPES = ("publish", "read", "audit")
ANONYMOUS = "anonymous"

# Also every `recordedby` the service writes: a token's name, or its own (cli, ingest...).
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_DIGEST = re.compile(r"^[0-9a-fA-F]{64}$")


class TokenConfigError(ValueError):
    """The token configuration cannot be used; the service must not start."""


@dataclass(frozen=True)
class Token:
    name: str
    scopes: frozenset[str]
    digest: bytes  # sha256 of the secret, 32 bytes

    def allows(self, scope: str) -> bool:
        return scope in self.scopes


def digest_of(secret: str) -> str:
    """The hex digest to configure for `secret`."""
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_entry(text: str, where: str) -> Token:
    parts = text.strip().split(":")
    if len(parts) != 3:
        raise TokenConfigError(
            f"{where}: expected name:scope+scope:sha256hex (three parts separated by ':'), "
            f"got {len(parts)} part(s)")
    name, scopes_text, digest_hex = parts
    if not NAME.fullmatch(name):
        raise TokenConfigError(
            f"{where}: the name must be 1-64 characters of A-Z a-z 0-9 . _ @ - "
            "(it becomes `recordedby` of what this token publishes)")
    if name == ANONYMOUS:
        raise TokenConfigError(f"{where}: {ANONYMOUS!r} is reserved for the auth-off principal")
    scopes = scopes_text.split("+")
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes_text:
        raise TokenConfigError(
            f"{where} ({name}): scopes must be one or more of {'+'.join(SCOPES)} joined by '+'")
    if not _DIGEST.fullmatch(digest_hex):
        raise TokenConfigError(
            f"{where} ({name}): the third part must be the sha256 hex digest of the secret "
            "(64 hex characters), not the secret itself")
    return Token(name, frozenset(scopes), bytes.fromhex(digest_hex))


def parse_tokens(
    env_value: str | None, file_text: str | None = None, file_name: str = "tokens file"
) -> tuple[Token, ...]:
    """Entries of TIMELINE_TOKENS (comma-separated) and of the tokens file
    (one a line, `#` comments, blank lines ignored), together."""
    tokens: list[Token] = []
    for number, item in enumerate((env_value or "").split(","), start=1):
        if item.strip():
            tokens.append(parse_entry(item, f"TIMELINE_TOKENS entry {number}"))
    for number, line in enumerate((file_text or "").splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if entry:
            tokens.append(parse_entry(entry, f"{file_name} line {number}"))
    _check_unique(tokens)
    return tuple(tokens)


def _check_unique(tokens: list[Token]) -> None:
    names: set[str] = set()
    digests: dict[bytes, str] = {}
    for token in tokens:
        if token.name in names:
            raise TokenConfigError(f"token name {token.name!r} is configured twice")
        if token.digest in digests:
            raise TokenConfigError(
                f"tokens {digests[token.digest]!r} and {token.name!r} have the same secret: "
                "a request could not tell which principal made it")
        names.add(token.name)
        digests[token.digest] = token.name


def load_tokens(tokens: str | None, tokens_file: str | None) -> tuple[Token, ...]:
    """The configured tokens (none configured, both None: auth is off; configured
    but naming none, as an empty file or a variable set to "": refused)."""
    file_text = None
    if tokens_file:  # "" names no file: nothing to read, refused below if nothing else
        try:
            file_text = Path(tokens_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise TokenConfigError(
                f"TIMELINE_TOKENS_FILE {tokens_file}: cannot read it ({exc.strerror})") from None
        except UnicodeDecodeError:
            raise TokenConfigError(
                f"TIMELINE_TOKENS_FILE {tokens_file}: not UTF-8 text") from None
    found = parse_tokens(tokens, file_text, f"TIMELINE_TOKENS_FILE {tokens_file}")
    if not found and (tokens is not None or tokens_file is not None):
        # A mistake (an emptied file, a stray comma, VAR="") would otherwise turn auth off.
        if tokens is not None:
            named, empty = "TIMELINE_TOKENS", tokens == ""
        else:
            named, empty = "TIMELINE_TOKENS_FILE", tokens_file == ""
            named += f" {tokens_file}" if tokens_file else ""
        reason = " (it is empty)" if empty else ""
        raise TokenConfigError(
            f"{named} is set but names no token{reason}; unset it for no auth")
    return found


def authenticate(tokens: tuple[Token, ...], secret: str) -> Token | None:
    """The token whose digest matches `secret`'s, compared in constant time
    against every configured token so timing tells nothing about which is near."""
    presented = hashlib.sha256(secret.encode()).digest()
    found = None
    for token in tokens:
        if hmac.compare_digest(presented, token.digest):
            found = token
    return found
