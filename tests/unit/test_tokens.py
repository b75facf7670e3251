"""Token configuration parsing and checking, and the route → scope table (pure)."""

from __future__ import annotations

import hashlib

import pytest

from services.auth.tokens import (
    TokenConfigError,
    authenticate,
    digest_of,
    load_tokens,
    parse_tokens,
)
from services.config import load
from services.http.auth import DENY, required_scope

SECRET = "s3cret-value"
DIGEST = hashlib.sha256(SECRET.encode()).hexdigest()


def test_digest_of_is_sha256_hex() -> None:
    assert digest_of(SECRET) == DIGEST


def test_env_entries_are_comma_separated_with_plus_joined_scopes() -> None:
    other = digest_of("other")
    tokens = parse_tokens(f"ci:publish+read:{DIGEST}, auditor:audit:{other.upper()}")
    assert [(t.name, sorted(t.scopes)) for t in tokens] == [
        ("ci", ["publish", "read"]), ("auditor", ["audit"])]
    assert tokens[1].digest == bytes.fromhex(other)


def test_file_entries_one_a_line_with_comments_and_blank_lines() -> None:
    text = f"# who may write\n\nci:publish:{DIGEST}  # the importer\n   # indented comment\n"
    [token] = parse_tokens(None, text)
    assert (token.name, token.scopes) == ("ci", frozenset({"publish"}))


def test_env_and_file_together_must_not_repeat_a_name() -> None:
    both = parse_tokens(f"a:read:{DIGEST}", f"b:read:{digest_of('x')}")
    assert [t.name for t in both] == ["a", "b"]
    with pytest.raises(TokenConfigError, match="'a' is configured twice"):
        parse_tokens(f"a:read:{DIGEST}", f"a:audit:{digest_of('x')}")


@pytest.mark.parametrize(("entry", "complaint"), [
    (f"ci:publish{DIGEST}", "three parts"),
    (f"ci:publish:x:{DIGEST}", "three parts"),
    (f"c i:publish:{DIGEST}", "name must be"),
    (f":publish:{DIGEST}", "name must be"),
    (f"anonymous:read:{DIGEST}", "reserved"),
    (f"ci:write:{DIGEST}", "scopes must be one or more of publish\\+read\\+audit"),
    (f"ci::{DIGEST}", "scopes must be"),
    (f"ci:read+:{DIGEST}", "scopes must be"),
    ("ci:read:not-a-digest-but-the-raw-secret", "sha256 hex digest of the secret"),
    (f"ci:read:{DIGEST[:-2]}", "64 hex characters"),
])
def test_bad_entries_are_refused_naming_the_problem(entry: str, complaint: str) -> None:
    with pytest.raises(TokenConfigError, match=complaint) as caught:
        parse_tokens(f"ok:read:{digest_of('fine')},{entry}")
    assert "entry 2" in str(caught.value)
    assert "raw-secret" not in str(caught.value), "a misplaced secret must not be echoed"


def test_file_errors_name_the_line() -> None:
    with pytest.raises(TokenConfigError, match=r"tokens\.txt line 3"):
        parse_tokens(None, f"# c\nok:read:{DIGEST}\nbroken\n", "tokens.txt")


def test_two_names_with_one_secret_are_refused() -> None:
    with pytest.raises(TokenConfigError, match="same secret"):
        parse_tokens(f"a:read:{DIGEST},b:audit:{DIGEST}")


def test_unreadable_tokens_file_is_a_config_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TokenConfigError, match="cannot read it"):
        load_tokens(None, str(tmp_path / "missing"))
    latin1 = tmp_path / "latin1"
    latin1.write_bytes(b"caf\xe9:read:" + DIGEST.encode() + b"\n")
    with pytest.raises(TokenConfigError, match="not UTF-8 text"):  # was a traceback
        load_tokens(None, str(latin1))
    path = tmp_path / "tokens"
    path.write_text(f"ci:read:{DIGEST}\n")
    assert [t.name for t in load_tokens(None, str(path))] == ["ci"]


def test_no_configuration_means_no_tokens() -> None:
    assert load_tokens(None, None) == ()


def test_a_configuration_naming_no_token_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An emptied file or a stray comma would otherwise turn auth off, silently."""
    comments = tmp_path / "tokens"
    comments.write_text("# every token revoked\n\n")
    with pytest.raises(TokenConfigError, match=r"TIMELINE_TOKENS_FILE .* names no token"):
        load_tokens(None, str(comments))
    with pytest.raises(TokenConfigError, match="TIMELINE_TOKENS is set but names no token"):
        load_tokens(",", None)
    assert parse_tokens(" , ", "# only a comment\n") == ()


@pytest.mark.parametrize("variable", ["TIMELINE_TOKENS", "TIMELINE_TOKENS_FILE"])
def test_a_variable_set_but_empty_is_refused(variable: str) -> None:
    """`VAR=""` was read as unset, so auth was silently off while `VAR=" "` was refused."""
    settings = load({variable: ""})
    with pytest.raises(TokenConfigError,
                       match=rf"^{variable} is set but names no token \(it is empty\)"):
        load_tokens(settings.tokens, settings.tokens_file)
    assert load_tokens(load({}).tokens, load({}).tokens_file) == ()  # unset: auth off


def test_an_empty_variable_beside_one_naming_tokens_is_accepted(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """As a blank TIMELINE_TOKENS beside a tokens file is: auth is on either way."""
    path = tmp_path / "tokens"
    path.write_text(f"ci:read:{DIGEST}\n")
    settings = load({"TIMELINE_TOKENS": "", "TIMELINE_TOKENS_FILE": str(path)})
    assert [t.name for t in load_tokens(settings.tokens, settings.tokens_file)] == ["ci"]
    settings = load({"TIMELINE_TOKENS": f"ci:read:{DIGEST}", "TIMELINE_TOKENS_FILE": ""})
    assert [t.name for t in load_tokens(settings.tokens, settings.tokens_file)] == ["ci"]


def test_authenticate_matches_only_the_right_secret() -> None:
    tokens = parse_tokens(f"a:read:{digest_of('alpha')},b:audit:{digest_of('beta')}")
    found = authenticate(tokens, "beta")
    assert found is not None and found.name == "b" and found.allows("audit")
    assert not found.allows("read")
    assert authenticate(tokens, "gamma") is None
    assert authenticate(tokens, digest_of("alpha")) is None, "the digest is not the secret"
    assert authenticate((), "alpha") is None


def test_config_masks_tokens_and_digest_key() -> None:
    settings = load({"TIMELINE_TOKENS": f"a:read:{DIGEST}", "TIMELINE_DIGEST_KEY": "hmac-key",
                     "TIMELINE_TOKENS_FILE": "/etc/timeline/tokens"})
    shown = settings.masked()
    assert shown["tokens"] == "***" and shown["digest_key"] == "***"
    assert shown["tokens_file"] == "/etc/timeline/tokens"  # a path, not a secret
    assert DIGEST not in repr(shown) and "hmac-key" not in repr(shown)


@pytest.mark.parametrize(("method", "path", "scope"), [
    ("POST", "/v1/events", "publish"),
    ("GET", "/v1/events", "read"),
    ("GET", "/v1/timelines/entity/{ident:str}", "read"),
    ("GET", "/v1/entities/{ident:str}", "read"),
    ("GET", "/v1/live", "read"),
    ("GET", "/v1/audit/verify", "audit"),
    ("POST", "/v1/audit/replay", "audit"),
    ("GET", "/healthz", None),
    ("GET", "/readyz", None),
    ("GET", "/metrics", None),
    ("GET", "/schema/openapi.json", None),
    ("GET", "/", None),
    ("GET", "/asyncapi.json", None),
    ("GET", "/static/app.js", None),
    ("GET", "/v1/entities", "read"),
    # fail closed: what no rule names is refused, and prefixes match whole segments
    ("DELETE", "/v1/events", DENY),
    ("POST", "/v1/timelines/all", DENY),
    ("GET", "/v1/eventsx", DENY),
    ("GET", "/v1/secret-admin", DENY),
    ("GET", "/healthzz", DENY),
])
def test_route_table(method: str, path: str, scope: str | None) -> None:
    assert required_scope(method, path) == scope
