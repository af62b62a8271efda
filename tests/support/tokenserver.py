"""
A Docker token server (the `auth.token` side of distribution), for bearer-auth tests.

`GET /token?service=S&scope=repository:NAME:pull,push&scope=...`, optionally with basic
credentials, answers `{"token", "access_token", "expires_in", "issued_at"}` (the Docker
token protocol). `POST /token` speaks the OAuth2 form the docker CLI uses for identity
tokens: `grant_type=password` (a refresh token comes back with `access_type=offline`) and
`grant_type=refresh_token` (a docker config `identitytoken` is such a refresh token).

Tokens are ES256 JWTs. Distribution 2.8.2 finds the verification key in one of three
ways (`registry/auth/token/token.go`, `VerifySigningKey`): an `x5c` header whose chain
verifies against `rootcertbundle`, an inline `jwk` (accepted only if its key is in the
bundle too), or a `kid` naming a bundle key by its libtrust fingerprint (base32 of the
first 240 bits of the SPKI's sha256, in colon-separated groups of four). We send `x5c`
with a self-signed certificate that is also the whole bundle: it needs no libtrust
fingerprint code and Go's `x509.Verify` accepts a leaf that is itself a trusted root.
(We checked that `kid` works as well.) The audience claim must be a plain string: 2.8
reads `aud` into a Go string and answers `invalid_token` to a list (3.0 takes both).
A token lacking a scope gets a 401 whose challenge says `error="insufficient_scope"`.

Distribution allows 60 s of clock skew on `exp` and `nbf`, so a token with
`lifetime=1` is still accepted for a minute; tests of expiry cannot rely on the real
registry refusing it.

The server runs on 127.0.0.1 in a background thread with its own event loop, so
synchronous (session-scoped) fixtures can start and stop it. Every request is logged
as a `TokenRequest` so tests can assert on scopes and credentials.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import fnmatch
import json
import secrets
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

if TYPE_CHECKING:
    from tests.support.registry import TLSFiles

#: What the registry and the token server call each other (`service`, `issuer`).
DEFAULT_SERVICE = "relocator-test-registry"
DEFAULT_ISSUER = "relocator-test-token-server"
# Tokens live 5 minutes, like Docker Hub's; the registry adds 60 s of leeway.
DEFAULT_LIFETIME = 300
# Wait at most 10 s for the server thread to start or stop.
_THREAD_TIMEOUT = 10.0
# The signing certificate is valid from a day ago for 30 days: no clock-skew surprises.
_CERT_BACKDATE = datetime.timedelta(days=1)
_CERT_VALIDITY = datetime.timedelta(days=30)
# A P-256 ES256 signature is r and s as 32-byte big-endian integers (RFC 7518 §3.4).
_ES256_PART = 32


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenUser:
    """A user of the token server and what it may do."""

    password: str
    #: Actions granted on matching repositories (`pull`, `push`, `delete`, `*`).
    actions: frozenset[str] = frozenset({"pull", "push", "delete"})
    #: `fnmatch` patterns of repository names the actions apply to.
    repositories: tuple[str, ...] = ("*",)

    def grants(self, name: str, wanted: Iterable[str]) -> tuple[str, ...]:
        """The subset of `wanted` actions this user holds on repository `name`."""
        if not any(fnmatch.fnmatchcase(name, p) for p in self.repositories):
            return ()
        return tuple(a for a in wanted if a in self.actions)


#: Users of a default `TokenServer`: one that may push, one that may only pull.
DEFAULT_USERS: Mapping[str, TokenUser] = {
    "pusher": TokenUser(password="pusher-secret"),
    "puller": TokenUser(password="puller-secret", actions=frozenset({"pull"})),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenRequest:
    """One request the token server answered."""

    method: str
    path: str
    #: Query parameters (GET) or form fields (POST), secrets (`password`,
    #: `refresh_token`) replaced by `"***"`.
    params: tuple[tuple[str, str], ...]
    #: Every `scope` asked for, as sent (one entry per `scope=`; OAuth's
    #: space-separated list is split).
    scopes: tuple[str, ...]
    service: str | None
    #: `None` for the GET protocol, else the OAuth2 grant type.
    grant_type: str | None
    #: Whether an `Authorization` header came with the request.
    authorization: bool
    #: The authenticated user, `None` when anonymous or refused.
    user: str | None
    status: int
    #: Scopes granted, as `type:name:actions` (actions sorted).
    granted: tuple[str, ...] = ()


class TokenServer:
    """
    The token server: construct, `start()` (or use as a context manager), `stop()`.

    Pass it to `start_registry(..., token_server=server)` after starting it.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        users: Mapping[str, TokenUser] = DEFAULT_USERS,
        anonymous_pull: bool = False,
        lifetime: int = DEFAULT_LIFETIME,
        service: str = DEFAULT_SERVICE,
        issuer: str = DEFAULT_ISSUER,
        tls: TLSFiles | None = None,
    ) -> None:
        """
        Args:
            workdir: Directory for the signing certificate (`rootcertbundle`).
            users: Accepted users, their passwords and rights.
            anonymous_pull: Grant `pull` on every repository without credentials.
            lifetime: Seconds a token is valid (`expires_in`).
            service: The service name the registry is configured with.
            issuer: The `iss` claim the registry is configured to trust.
            tls: Serve https with these files instead of http.
        """
        self.users = dict(users)
        self.anonymous_pull = anonymous_pull
        self.lifetime = lifetime
        self.service = service
        self.issuer = issuer
        self.tls = tls
        workdir.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._cert = _self_signed(self._key)
        self.rootcertbundle = workdir / "token-signer.pem"
        self.rootcertbundle.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))
        self._x5c = base64.b64encode(self._cert.public_bytes(serialization.Encoding.DER)).decode()
        self._log: list[TokenRequest] = []
        self._refresh_tokens: dict[str, str] = {}
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        """`http(s)://127.0.0.1:PORT`."""
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def realm(self) -> str:
        """The token endpoint, as the registry's `auth.token.realm`."""
        return f"{self.url}/token"

    def start(self) -> Self:
        """
        Start serving in a background thread; returns once the port is listening.

        Raises:
            RuntimeError: Already started, or the server failed to start.
        """
        if self._thread is not None:
            raise RuntimeError("token server already started")
        # Bound and listening before the thread starts: the port is known at once.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        self._sock = sock
        self.port = sock.getsockname()[1]
        loop = asyncio.new_event_loop()
        self._loop = loop
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            runner = web.AppRunner(self._app(), access_log=None)
            try:
                loop.run_until_complete(runner.setup())
                ssl_context = self.tls.server_ssl_context() if self.tls is not None else None
                site = web.SockSite(runner, sock, ssl_context=ssl_context)
                loop.run_until_complete(site.start())
            except BaseException as exc:  # noqa: BLE001 - handed to start(), which raises
                failure.append(exc)
                started.set()
                loop.run_until_complete(runner.cleanup())
                loop.close()
                return
            started.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(runner.cleanup())
                # Let the connections closed by the cleanup finish closing before the
                # loop goes (else their sockets warn later, in another test).
                loop.run_until_complete(asyncio.sleep(0))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="relocator-token-server", daemon=True)
        self._thread.start()
        if not started.wait(_THREAD_TIMEOUT) or failure:
            self.stop()
            raise RuntimeError(f"token server did not start: {failure[:1]}")
        return self

    def stop(self) -> None:
        """Stop serving and join the thread; safe to call twice."""
        thread, loop, sock = self._thread, self._loop, self._sock
        self._thread = self._loop = self._sock = None
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_THREAD_TIMEOUT)
        if sock is not None:
            sock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- what tests use ----------------------------------------------------------------

    def registry_config(self) -> dict[str, str]:
        """The registry's `auth.token` section for this server."""
        return {
            "realm": self.realm,
            "service": self.service,
            "issuer": self.issuer,
            "rootcertbundle": str(self.rootcertbundle),
        }

    def default_credentials(self) -> tuple[str, str]:
        """The first user that may push (else the first user), with its password."""
        for name, user in self.users.items():
            if "push" in user.actions or "*" in user.actions:
                return name, user.password
        name, user = next(iter(self.users.items()))
        return name, user.password

    @property
    def requests(self) -> tuple[TokenRequest, ...]:
        """Every request answered so far, oldest first."""
        with self._lock:
            return tuple(self._log)

    def clear(self) -> None:
        """Forget the logged requests (not the refresh tokens)."""
        with self._lock:
            self._log.clear()

    def issue_refresh_token(self, username: str) -> str:
        """
        A refresh token for `username`: what docker stores as `identitytoken`.

        Raises:
            KeyError: No such user.
        """
        if username not in self.users:
            raise KeyError(username)
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._refresh_tokens[token] = username
        return token

    def issue_token(self, username: str | None, scopes: Iterable[str]) -> str:
        """
        A signed access token, as the server would grant `username` for `scopes`
        (e.g. for a `registrytoken` in docker config or `*_REGISTRY_TOKEN_0`).
        """
        token, _ = self._grant(username, list(scopes))
        return token

    # -- protocol ----------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/token", self._get_token)
        app.router.add_post("/token", self._post_token)
        return app

    async def _get_token(self, request: web.Request) -> web.Response:
        params = tuple(request.query.items())
        scopes = tuple(request.query.getall("scope", ()))
        user, refused = self._basic_user(request.headers.get("Authorization"))
        if refused:
            return self._answer(request, params, scopes, None, None, 401, {"details": refused})
        token, granted = self._grant(user, scopes)
        body = {
            "token": token,
            "access_token": token,
            "expires_in": self.lifetime,
            "issued_at": _rfc3339(time.time()),
        }
        return self._answer(request, params, scopes, None, user, 200, body, granted)

    async def _post_token(self, request: web.Request) -> web.Response:
        form = await request.post()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        params = tuple(
            (k, "***" if k in ("password", "refresh_token") else v) for k, v in fields.items()
        )
        scopes = tuple(fields.get("scope", "").split())
        grant_type = fields.get("grant_type")
        user: str | None = None
        if grant_type == "password":
            name = fields.get("username", "")
            known = self.users.get(name)
            if known is None or not secrets.compare_digest(
                known.password, fields.get("password", "")
            ):
                return self._answer(
                    request, params, scopes, grant_type, None, 401, {"error": "invalid_grant"}
                )
            user = name
        elif grant_type == "refresh_token":
            with self._lock:
                user = self._refresh_tokens.get(fields.get("refresh_token", ""))
            if user is None:
                return self._answer(
                    request, params, scopes, grant_type, None, 401, {"error": "invalid_grant"}
                )
        else:
            return self._answer(
                request,
                params,
                scopes,
                grant_type,
                None,
                400,
                {"error": "unsupported_grant_type"},
            )
        token, granted = self._grant(user, scopes)
        body: dict[str, Any] = {
            "access_token": token,
            "scope": " ".join(granted),
            "expires_in": self.lifetime,
            "issued_at": _rfc3339(time.time()),
        }
        if grant_type == "refresh_token" or fields.get("access_type") == "offline":
            body["refresh_token"] = (
                fields["refresh_token"]
                if grant_type == "refresh_token"
                else self.issue_refresh_token(user)
            )
        return self._answer(request, params, scopes, grant_type, user, 200, body, granted)

    def _answer(
        self,
        request: web.Request,
        params: tuple[tuple[str, str], ...],
        scopes: tuple[str, ...],
        grant_type: str | None,
        user: str | None,
        status: int,
        body: Mapping[str, Any],
        granted: tuple[str, ...] = (),
    ) -> web.Response:
        entry = TokenRequest(
            method=request.method,
            path=request.path,
            params=params,
            scopes=scopes,
            service=dict(params).get("service"),
            grant_type=grant_type,
            authorization="Authorization" in request.headers,
            user=user,
            status=status,
            granted=granted,
        )
        with self._lock:
            self._log.append(entry)
        headers = (
            {"WWW-Authenticate": 'Basic realm="relocator-test-tokens"'} if status == 401 else {}
        )
        return web.json_response(dict(body), status=status, headers=headers)

    def _basic_user(self, header: str | None) -> tuple[str | None, str | None]:
        """`(user, None)` for good or absent credentials, `(None, reason)` for bad ones."""
        if header is None:
            return None, None
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None, "only basic credentials are accepted"
        try:
            name, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None, "malformed basic credentials"
        known = self.users.get(name)
        if known is None or not secrets.compare_digest(known.password, password):
            return None, "invalid username or password"
        return name, None

    def _grant(self, user: str | None, scopes: Iterable[str]) -> tuple[str, tuple[str, ...]]:
        access: list[dict[str, Any]] = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions_text = rest.rpartition(":")
            wanted = [a for a in actions_text.split(",") if a]
            if kind == "repository" and name:
                if user is not None:
                    actions = self.users[user].grants(name, wanted)
                else:
                    actions = ("pull",) if self.anonymous_pull and "pull" in wanted else ()
            elif kind == "registry" and name == "catalog" and user is not None:
                actions = tuple(wanted)
            else:
                actions = ()
            if actions:
                access.append({"type": kind, "name": name, "actions": sorted(set(actions))})
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": user or "",
            "aud": self.service,
            "exp": now + self.lifetime,
            "nbf": now,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": access,
        }
        granted = tuple(f"{a['type']}:{a['name']}:{','.join(a['actions'])}" for a in access)
        return self._sign(claims), granted

    def _sign(self, claims: Mapping[str, Any]) -> str:
        header = {"typ": "JWT", "alg": "ES256", "x5c": [self._x5c]}
        signing_input = f"{_b64url_json(header)}.{_b64url_json(claims)}"
        der = self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        signature = r.to_bytes(_ES256_PART, "big") + s.to_bytes(_ES256_PART, "big")
        return f"{signing_input}.{_b64url(signature)}"


def _self_signed(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relocator test token signer")])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CERT_BACKDATE)
        .not_valid_after(now + _CERT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_json(doc: Mapping[str, Any]) -> str:
    return _b64url(json.dumps(doc, separators=(",", ":")).encode())


def _rfc3339(timestamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
