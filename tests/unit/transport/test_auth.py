"""The auth handshake's pieces: challenges, scopes, token responses and the token cache."""

from __future__ import annotations

import json

import pytest

from relocator.errors import AuthError, LimitExceeded
from relocator.transport import Scope
from relocator.transport.auth import (
    MAX_TOKEN_BODY,
    Challenge,
    TokenCache,
    parse_challenges,
    parse_token_response,
    pick_challenge,
    pull,
    push,
)

HUB = (
    'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
    'scope="repository:library/nginx:pull"'
)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param("", [], id="empty"),
        pytest.param(
            HUB,
            [
                Challenge(
                    "bearer",
                    {
                        "realm": "https://auth.docker.io/token",
                        "service": "registry.docker.io",
                        "scope": "repository:library/nginx:pull",
                    },
                )
            ],
            id="docker-hub",
        ),
        pytest.param(
            'Basic realm="Registry Realm"',
            [Challenge("basic", {"realm": "Registry Realm"})],
            id="basic",
        ),
        pytest.param(
            'BEARER Realm="https://a.example/t" , Service = reg',
            [Challenge("bearer", {"realm": "https://a.example/t", "service": "reg"})],
            id="case-and-spaces",
        ),
        pytest.param(
            r'Bearer realm="https://a.example/t",error="say \"hi\""',
            [Challenge("bearer", {"realm": "https://a.example/t", "error": 'say "hi"'})],
            id="escaped-quotes",
        ),
        pytest.param(
            'Basic realm="r", Bearer realm="https://a.example/t",service="s"',
            [
                Challenge("basic", {"realm": "r"}),
                Challenge("bearer", {"realm": "https://a.example/t", "service": "s"}),
            ],
            id="two-challenges",
        ),
        pytest.param(
            'Negotiate, Bearer realm="https://a.example/t"',
            [Challenge("negotiate", {}), Challenge("bearer", {"realm": "https://a.example/t"})],
            id="bare-scheme-then-comma",
        ),
        pytest.param(
            "Negotiate",
            [Challenge("negotiate", {})],
            id="bare-scheme",
        ),
    ],
)
def test_parse_challenges(header: str, expected: list[Challenge]) -> None:
    """
    `WWW-Authenticate` is read as RFC 7235 challenges: schemes and parameter names
    lowercased, quoted values unescaped, several challenges separated by commas.
    """
    assert expected == parse_challenges(header)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('Basic realm="r", Bearer realm="t"', "bearer"),
        ('Bearer realm="t", Basic realm="r"', "bearer"),
        ('Negotiate, Basic realm="r"', "basic"),
        ("Negotiate", None),
        ("", None),
    ],
)
def test_pick_challenge_prefers_bearer_then_basic(header: str, expected: str | None) -> None:
    """Bearer is answered before Basic; schemes we cannot answer are skipped."""
    challenge = pick_challenge(parse_challenges(header))

    assert expected == (challenge.scheme if challenge else None)


def test_scopes_print_as_the_token_protocol_spells_them() -> None:
    """`pull` asks for read access, `push` for read and write."""
    assert ["repository:team/app:pull", "repository:team/app:pull,push"] == [
        str(pull("team/app")),
        str(push("team/app")),
    ]


def test_token_cache_keys_by_host_and_scope_set() -> None:
    """The order of scopes does not matter; the host and the scopes do."""
    a, b = pull("a"), push("b")

    assert TokenCache.key("reg.example", (a, b)) == TokenCache.key("reg.example", (b, a))
    assert TokenCache.key("reg.example", (a,)) != TokenCache.key("other.example", (a,))
    assert TokenCache.key("reg.example", (a,)) != TokenCache.key("reg.example", (a, b))


def test_token_cache_returns_live_tokens_and_forgets_dropped_ones() -> None:
    """A token is reused until dropped (after the registry refused it)."""
    cache = TokenCache()
    key = TokenCache.key("reg.example", (pull("a"),))

    cache.put(key, "T", 300.0)
    cached = cache.get(key)
    cache.drop(key)

    assert ("T", None) == (cached, cache.get(key))


def test_token_cache_does_not_hand_out_a_token_about_to_expire() -> None:
    """A token with less than the safety margin left is as good as expired."""
    cache = TokenCache()
    key = TokenCache.key("reg.example", (Scope("a", ("pull",)),))

    cache.put(key, "T", 5.0)

    assert None is cache.get(key)


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        pytest.param({"token": "T", "expires_in": 300}, ("T", 300.0), id="token"),
        pytest.param({"access_token": "A", "expires_in": 300}, ("A", 300.0), id="access-token"),
        pytest.param({"token": "T", "access_token": "A"}, ("T", 60.0), id="token-wins"),
        pytest.param({"token": "T"}, ("T", 60.0), id="no-expiry-means-60s"),
        pytest.param({"token": "T", "expires_in": 30}, ("T", 60.0), id="short-raised-to-60s"),
        pytest.param({"token": "T", "expires_in": 0}, ("T", 60.0), id="zero"),
        pytest.param({"token": "T", "expires_in": -5}, ("T", 60.0), id="negative"),
        pytest.param({"token": "T", "expires_in": True}, ("T", 60.0), id="bool"),
        pytest.param({"token": "T", "expires_in": "900"}, ("T", 60.0), id="string"),
        pytest.param({"token": "T", "expires_in": 90.5}, ("T", 90.5), id="float"),
    ],
)
def test_parse_token_response(doc: object, expected: tuple[str, float]) -> None:
    """
    The token is `token` or else `access_token`; a lifetime missing, malformed or below
    60 s counts as 60 s, so a registry cannot make us fetch tokens in a loop.
    """
    assert expected == parse_token_response(json.dumps(doc).encode(), host="reg.example")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"expires_in": 300}', id="no-token"),
        pytest.param(b'{"token": ""}', id="empty-token"),
        pytest.param(b'{"token": 7}', id="numeric-token"),
        pytest.param(b'["token"]', id="array"),
        pytest.param(b"secret-looking-garbage", id="not-json"),
    ],
)
def test_token_response_without_a_token_is_an_auth_error(body: bytes) -> None:
    """An answer without a usable token fails, and never echoes the body (it may be secret)."""
    with pytest.raises(AuthError) as caught:
        parse_token_response(body, host="reg.example")

    assert "reg.example" in str(caught.value)
    assert "secret-looking-garbage" not in str(caught.value)


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("abc\r\nX-Injected: 1", id="crlf"),
        pytest.param("abc\ndef", id="lf"),
        pytest.param("abc\x00def", id="nul"),
        pytest.param("abc def", id="space"),
        pytest.param("t\u00f6ken", id="non-ascii"),
    ],
)
def test_token_that_is_not_a_header_value_is_an_auth_error(token: str) -> None:
    """
    A token with a CR, LF, NUL, space or non-ASCII character would split or break the
    Authorization header: an auth error naming the endpoint, without the token.
    """
    body = json.dumps({"token": token}).encode()

    expected = "reg.example answered a token that is not a valid header value"
    with pytest.raises(AuthError, match=expected) as caught:
        parse_token_response(body, host="reg.example")

    assert "abc" not in str(caught.value)


def test_token_response_over_the_cap_is_refused() -> None:
    """A token body larger than MAX_TOKEN_BODY is refused before parsing."""
    body = json.dumps({"token": "T", "pad": "x" * MAX_TOKEN_BODY}).encode()

    with pytest.raises(LimitExceeded):
        parse_token_response(body, host="reg.example")


@pytest.mark.parametrize("expires", [float("nan"), float("inf")])
def test_token_lifetime_that_is_not_finite_is_the_default(expires: float) -> None:
    """`expires_in` of NaN or infinity would keep a token forever; 60 s is used instead."""
    body = json.dumps({"token": "t", "expires_in": expires}).encode()

    assert ("t", 60.0) == parse_token_response(body, host="reg.example")
