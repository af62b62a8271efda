"""
The registry auth handshake: challenges, scopes and the bearer token cache.

A registry answers 401 with `WWW-Authenticate: Bearer realm=...,service=...`; we then
ask the realm for a token covering the scopes the request needs and retry once. Tokens
are cached per host and scope set, and reused until shortly before they expire so that a
long upload never starts with a token about to lapse.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field

from relocator import redaction
from relocator.errors import BadToken, LimitExceeded

#: Token responses are a few KiB; more is a misbehaving or hostile server.
MAX_TOKEN_BODY = 1024 * 1024
# Tokens without `expires_in` live 60 s by the Docker token spec; shorter values are
# raised to 60 s as containers/image does, so a registry cannot make us spin.
_DEFAULT_TOKEN_LIFETIME = 60.0
# Refresh a token this long before it expires, so a request never leaves with a token
# that expires in flight.
_EXPIRY_MARGIN = 10.0

# Visible ASCII (RFC 9110 field-vchar without obs-text): a token or password with a CR,
# LF or NUL would split or end the header it is sent in.
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")
# An RFC 7230 "token" (the grammar's word for a bare word), not a credential.
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"  # noqa: S105
_PARAM = re.compile(rf'\s*({_TOKEN})\s*=\s*("(?:[^"\\]|\\.)*"|{_TOKEN})\s*(?:,|$)')
# A scheme ends at whitespace, the end, or the comma after a challenge without params.
_SCHEME = re.compile(rf"\s*({_TOKEN})(?:\s+|$|(?=,))")


@dataclass(frozen=True, slots=True)
class Scope:
    """Access to one repository: `repository:<name>:<actions>`."""

    repository: str
    actions: tuple[str, ...]

    def __str__(self) -> str:
        return f"repository:{self.repository}:{','.join(self.actions)}"


def pull(repository: str) -> Scope:
    """Read access to `repository`."""
    return Scope(repository, ("pull",))


def push(repository: str) -> Scope:
    """Read and write access to `repository`."""
    return Scope(repository, ("pull", "push"))


@dataclass(frozen=True, slots=True)
class Challenge:
    """One `WWW-Authenticate` challenge."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str | None:
        """The token endpoint (Bearer) or protection space (Basic)."""
        return self.params.get("realm")


def parse_challenges(header: str) -> list[Challenge]:
    """
    Parse a `WWW-Authenticate` header into its challenges (RFC 7235).

    Unparseable parts end the parse; whatever was read before them is kept.
    """
    challenges: list[Challenge] = []
    pos = 0
    while pos < len(header):
        scheme = _SCHEME.match(header, pos)
        if scheme is None:
            break
        pos = scheme.end()
        params: dict[str, str] = {}
        while pos < len(header):
            param = _PARAM.match(header, pos)
            if param is None:
                break
            value = param.group(2)
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            params[param.group(1).lower()] = value
            pos = param.end()
        challenges.append(Challenge(scheme.group(1).lower(), params))
        # A bare comma may separate challenges without params.
        while pos < len(header) and header[pos] in ", ":
            pos += 1
    return challenges


def pick_challenge(challenges: list[Challenge]) -> Challenge | None:
    """The challenge we can answer: Bearer first, then Basic; others (Negotiate) skipped."""
    for scheme in ("bearer", "basic"):
        for challenge in challenges:
            if challenge.scheme == scheme:
                return challenge
    return None


@dataclass(slots=True)
class _Token:
    value: str
    expires: float


class TokenCache:
    """Bearer tokens per (host, scopes), dropped shortly before they expire."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str], _Token] = {}

    @staticmethod
    def key(host: str, scopes: tuple[Scope, ...]) -> tuple[str, str]:
        """The cache key of a token for `scopes` on `host`."""
        return host, " ".join(sorted(str(s) for s in scopes))

    def get(self, key: tuple[str, str]) -> str | None:
        """A token still valid for at least the safety margin, or None."""
        token = self._tokens.get(key)
        if token is None or token.expires - _EXPIRY_MARGIN < time.monotonic():
            return None
        return token.value

    def put(self, key: tuple[str, str], value: str, lifetime: float) -> None:
        """Remember a token for `lifetime` seconds."""
        self._tokens[key] = _Token(value, time.monotonic() + lifetime)

    def drop(self, key: tuple[str, str]) -> None:
        """Forget a token the registry refused."""
        self._tokens.pop(key, None)


def header_safe(value: str) -> bool:
    """Whether `value` may be sent as a bearer token: visible ASCII only, not empty."""
    return _HEADER_SAFE.fullmatch(value) is not None


def parse_token_response(body: bytes, *, host: str) -> tuple[str, float]:
    """
    Read a token endpoint's answer.

    Returns:
        The token and its lifetime in seconds.

    Raises:
        LimitExceeded: The body is larger than `MAX_TOKEN_BODY`.
        BadToken: No `token` / `access_token` in it, or one that is not a valid header
            value. The body is never echoed: it may hold a secret.
    """
    if len(body) > MAX_TOKEN_BODY:
        raise LimitExceeded(f"token response from {host} exceeds {MAX_TOKEN_BODY} bytes")
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise BadToken(f"token endpoint of {host} did not answer JSON", host=host)
    token = doc.get("token") or doc.get("access_token")
    if not isinstance(token, str) or not token:
        raise BadToken(f"token endpoint of {host} answered without a token", host=host)
    redaction.remember(token)
    if not header_safe(token):
        raise BadToken(
            f"token endpoint of {host} answered a token that is not a valid header value "
            "(control characters, spaces or non-ASCII)",
            host=host,
        )
    expires = doc.get("expires_in")
    lifetime = _DEFAULT_TOKEN_LIFETIME
    if isinstance(expires, int | float) and not isinstance(expires, bool):
        # NaN or infinity would make a token live forever in the cache.
        lifetime = float(expires) if math.isfinite(expires) else _DEFAULT_TOKEN_LIFETIME
    return token, max(lifetime, _DEFAULT_TOKEN_LIFETIME)
