"""
The HTTP client: auth handshake, retries, per-host limits, redirects and capped reads.

Most tests talk to tiny in-process HTTP servers on 127.0.0.1 (`FakeHost`), so that
headers are asserted as they arrive on the wire and two ports make two hosts. Cases that
need https URLs (downgrades, token realms) use `aioresponses`, which never opens a socket.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import json
import logging
import socket
import time
import types
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from unittest import mock
from urllib.parse import parse_qs

import aiohttp
import anyio
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aioresponses import aioresponses
from multidict import CIMultiDictProxy, MultiMapping
from yarl import URL

from relocator.errors import (
    AuthError,
    InputError,
    LimitExceeded,
    NotFound,
    RegistryError,
    RelocatorError,
    TransportError,
    UnsafeRedirect,
)
from relocator.oci import MAX_MANIFEST_BYTES
from relocator.transport import HttpClient, Keychain, RetryPolicy, TransportSettings
from relocator.transport.auth import MAX_TOKEN_BODY, pull, push
from relocator.transport.response import MAX_ERROR_BODY

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MANIFEST = "/v2/team/app/manifests/v1"
BLOB = "/v2/team/app/blobs/sha256-0123"
# Retries in tests wait about a millisecond: the logic is under test, not the pacing.
FAST = RetryPolicy(initial=0.001, max_delay=0.005, jitter=0.0, max_retry_after=0.005)


# --- An in-process registry-shaped HTTP server --------------------------------------


@dataclass(frozen=True, slots=True)
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    query: MultiMapping[str]
    headers: CIMultiDictProxy[str]
    body: bytes

    @property
    def authorization(self) -> str | None:
        """The Authorization header, if any."""
        return self.headers.get("Authorization")


@dataclass(slots=True)
class FakeHost:
    """
    An HTTP server on 127.0.0.1 answering from a route table and recording every request.

    A route has one or more handlers used in turn, the last one for every later request;
    requests without a route get 404.
    """

    server: TestServer
    routes: dict[tuple[str, str], list[Handler]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)

    @classmethod
    async def start(cls) -> FakeHost:
        """A new server, listening."""
        app = web.Application()
        host = cls(TestServer(app, host="127.0.0.1"))
        app.router.add_route("*", "/{tail:.*}", host._dispatch)
        await host.server.start_server()
        return host

    @property
    def host(self) -> str:
        """`127.0.0.1:<port>`: the key of this host's state in the client."""
        return f"127.0.0.1:{self.server.port}"

    def url(self, path: str) -> str:
        """The absolute URL of `path` on this host."""
        return f"http://{self.host}{path}"

    def route(self, method: str, path: str, *handlers: Handler) -> None:
        """Answer `method path` with `handlers` in turn."""
        self.routes[(method, path)] = list(handlers)

    def requests(self, path: str) -> list[Seen]:
        """Every request for `path`, in order."""
        return [s for s in self.seen if s.path == path]

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(Seen(request.method, request.path, request.query, request.headers, body))
        handlers = self.routes.get((request.method, request.path))
        if not handlers:
            return web.Response(status=404)
        handler = handlers.pop(0) if len(handlers) > 1 else handlers[0]
        return await handler(request)


def reply(
    status: int = 200, body: bytes = b"", headers: Mapping[str, str] | None = None
) -> Handler:
    """A handler answering `status` with `body` and `headers`."""

    async def handle(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, body=body, headers=dict(headers or {}))

    return handle


def reply_json(doc: object, status: int = 200) -> Handler:
    """A handler answering a JSON document."""
    return reply(status, json.dumps(doc).encode(), {"Content-Type": "application/json"})


def redirect(location: str, status: int = 307) -> Handler:
    """A handler redirecting to `location`."""
    return reply(status, headers={"Location": location})


def chunked(body: bytes, status: int = 200) -> Handler:
    """A handler sending `body` with chunked encoding, so no Content-Length warns us."""

    async def handle(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(status=status)
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        piece = 64 * 1024
        try:
            for start in range(0, len(body), piece):
                await resp.write(body[start : start + piece])
            await resp.write_eof()
        except ConnectionError:
            pass  # the client stopped reading at its cap, as it should
        return resp

    return handle


def truncated(promised: int, sent: bytes) -> Handler:
    """A handler that promises `promised` bytes, sends `sent` and drops the connection."""

    async def handle(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": str(promised)})
        await resp.prepare(request)
        await resp.write(sent)
        assert request.transport is not None
        request.transport.close()
        return resp

    return handle


def challenge(realm: str, scheme: str = "Bearer") -> Handler:
    """A handler answering 401 with a challenge for `realm`."""
    params = f'realm="{realm}"' + (',service="fake-registry"' if scheme == "Bearer" else "")
    return reply(401, headers={"WWW-Authenticate": f"{scheme} {params}"})


def protected(
    then: Handler, *, realm: str, accept: Callable[[str | None], bool], scheme: str = "Bearer"
) -> Handler:
    """`then` for requests whose Authorization `accept`s, else a `scheme` challenge."""
    refuse = challenge(realm, scheme)

    async def handle(request: web.Request) -> web.StreamResponse:
        if accept(request.headers.get("Authorization")):
            return await then(request)
        return await refuse(request)

    return handle


def any_bearer(value: str | None) -> bool:
    """Accept any bearer token."""
    return value is not None and value.startswith("Bearer ")


def bearer_protected(host: FakeHost, then: Handler) -> Handler:
    """`then` behind a Bearer challenge whose realm is `/token` on `host`."""
    return protected(then, realm=host.url("/token"), accept=any_bearer)


def token_issuer(prefix: str = "T") -> Handler:
    """A token endpoint issuing `T1`, `T2`, ... for five minutes each."""
    issued = 0

    async def handle(request: web.Request) -> web.StreamResponse:
        nonlocal issued
        issued += 1
        return web.json_response({"token": f"{prefix}{issued}", "expires_in": 300})

    return handle


def basic(username: str, password: str) -> str:
    """The Basic Authorization header for a user."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def login(host: FakeHost | str, **fields: str) -> dict[str, str]:
    """Credential variables for `host`: alice/s3cret unless `fields` say otherwise."""
    name = host.host if isinstance(host, FakeHost) else host
    values = {"username": "alice", "password": "s3cret"} | fields
    return {"RELOCATOR_REGISTRY_HOSTNAME": name} | {
        f"RELOCATOR_REGISTRY_{key.upper()}": value for key, value in values.items()
    }


class Connect(Protocol):
    def __call__(
        self, *hosts: FakeHost, env: Mapping[str, str] | None = None, **settings: Any
    ) -> HttpClient: ...


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[], Awaitable[FakeHost]]]:
    """Starts fake hosts on demand; closes them after the test."""
    started: list[FakeHost] = []

    async def start() -> FakeHost:
        host = await FakeHost.start()
        started.append(host)
        return host

    yield start
    for host in started:
        await host.server.close()


@pytest.fixture
def connect(tmp_path: Path) -> Connect:
    """
    Makes an HttpClient that reaches `hosts` over plain http, with fast retries, no
    proxies, and only the credentials in `env` (no docker config).
    """

    def make(
        *hosts: FakeHost, env: Mapping[str, str] | None = None, **settings: Any
    ) -> HttpClient:
        options: dict[str, Any] = {
            "insecure_hosts": frozenset(h.host for h in hosts),
            "use_env_proxy": False,
            "retry": FAST,
        } | settings
        keychain = Keychain(env=dict(env or {}), docker_config_dir=tmp_path / "no-docker-config")
        return HttpClient(TransportSettings(**options), keychain)

    return make


async def get(
    client: HttpClient, url: str, *, limit: int = MAX_MANIFEST_BYTES, **kwargs: Any
) -> bytes:
    """GET `url` through `client` and read the body (capped at `limit`)."""
    async with client.request("GET", url, what="test request", **kwargs) as resp:
        return await resp.read(limit, what="test body")


# --- aioresponses, for https URLs without a TLS server -------------------------------


class _CompatResponse(aiohttp.ClientResponse):
    # aioresponses 0.7.9 does not pass the `stream_writer` aiohttp 3.14 requires
    # (pnuckowski/aioresponses#289); aiohttp reads only its `output_size`.
    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", types.SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


def stub(mocked: Any, method: str, url: str, **kwargs: Any) -> None:
    """Register one canned response with aioresponses."""
    mocked.add(url, method, response_class=_CompatResponse, **kwargs)


def calls(mocked: Any, method: str, url: str) -> int:
    """How many requests aioresponses saw for `method url`."""
    return len(mocked.requests.get((method, URL(url)), []))


# --- Authentication ----------------------------------------------------------------


async def test_bearer_challenge_leads_to_one_token_request_and_one_retry(
    serve: Callable[[], Awaitable[FakeHost]], connect: Connect
) -> None:
    """
    A 401 Bearer challenge leads to one token request naming the challenge's service
    and the request's scopes, with the user's Basic credentials, and to one retry of
    the request carrying `Authorization: Bearer <token>`.
    """
    registry = await serve()
    registry.route("GET", "/token", token_issuer())
    registry.route("GET", MANIFEST, bearer_protected(registry, reply(body=b"manifest")))

    async with connect(registry, env=login(registry)) as client:
        body = await get(client, registry.url(MANIFEST), scopes=(pull("team/app"),))

    [token_request] = registry.requests("/token")
    assert b"manifest" == body
    assert {"service": ["fake-registry"], "scope": ["repository:team/app:pull"]} == {
        key: token_request.query.getall(key) for key in token_request.query
    }
    assert basic("alice", "s3cret") == token_request.authorization
    assert [None, "Bearer T1"] == [s.authorization for s in registry.requests(MANIFEST)]


async def test_token_service_hiccup_is_retried_not_reported_as_a_login_problem(
    serve: Callable[[], Awaitable[FakeHost]], connect: Connect
) -> None:
    """A 503 from the token endpoint is retried like any 5xx; the request then succeeds."""
    registry = await serve()
    registry.route("GET", "/token", reply(503), token_issuer())
    registry.route("GET", MANIFEST, bearer_protected(registry, reply(body=b"manifest")))

    async with connect(registry, env=login(registry)) as client:
        body = await get(client, registry.url(MANIFEST), scopes=(pull("team/app"),))

    assert b"manifest" == body
    assert 2 == len(registry.requests("/token"))


async def test_anonymous_token_request_carries_no_credentials(
    serve: Callable[[], Awaitable[FakeHost]], connect: Connect
) -> None:
    """Without credentials the token is asked for anonymously (public pulls)."""
    registry = await serve()
    registry.route("GET", "/token", token_issuer())
    registry.route("GET", MANIFEST, bearer_protected(registry, reply(body=b"manifest")))

    async with connect(registry) as client:
        await get(client, registry.url(MANIFEST), scopes=(pull("team/app"),))

    assert [None] == [s.authorization for s in registry.requests("/token")]


async def test_tokens_are_cached_per_host_and_scope(
    serve: Callable[[], Awaitable[FakeHost]], connect: Connect
) -> None:
    """
    A second request with the same scopes reuses the token without a new challenge; a
    request with other scopes gets its own token, asked for before sending.
    """
    registry = await serve()
    registry.route("GET", "/token", token_issuer())
    registry.route("GET", MANIFEST, bearer_protected(registry, reply(body=b"manifest")))

    async with connect(registry, env=login(registry)) as client:
        for scopes in [(pull("team/app"),), (pull("team/app"),), (push("team/app"),)]:
            await get(client, registry.url(MANIFEST), scopes=scopes)

    assert [["repository:team/app:pull"], ["repository:team/app:pull,push"]] == [
        s.query.getall("scope") for s in registry.requests("/token")
    ]
    assert [None, "Bearer T1", "Bearer T1", "Bearer T2"] == [
        s.authorization for s in registry.requests(MANIFEST)
    ]


async def test_tokens_are_never_shared_between_hosts(
    serve: Callable[[], Awaitable[FakeHost]], connect: Connect
) -> None:
    """Each host's token comes from its own challenge; one host never sees another's."""
    first, second = await serve(), await serve()
    for host, prefix in ((first, "A"), (second, "B")):
        host.route("GET", "/token", token_issuer(prefix))
        host.route("GET", MANIFEST, bearer_protected(host, reply(body=b"manifest")))

    async with connect(first, second) as client:
        for host in (first, second, first, second):
            await get(client, host.url(MANIFEST), scopes=(pull("team/app"),))

    assert [None, "Bearer A1", "Bearer A1"] == [s.authorization for s in first.requests(MANIFEST)]
    assert [None, "Bearer B1", "Bearer B1"] == [
        s.authorization for s in second.requests(MANIFEST)
    ]


async def test_identity_token_is_exchanged_with_an_oauth2_post(
    serve: Callable[[], Awaitable[FakeHost]], connect: Connect
) -> None:
    """An identity (refresh) token is sent as an OAuth2 refresh_token grant, not as Basic."""
    registry = await serve()
    registry.route("POST", "/token", token_issuer())
    registry.route("GET", MANIFEST, bearer_protected(registry, reply(body=b"manifest")))
    env = {
        "RELOCATOR_REGISTRY_HOSTNAME": registry.host,
        "RELOCATOR_REGISTRY_IDENTITY_TOKEN": "refresh-me",
    }

    async with connect(registry, env=env) as client:
        await get(client, registry.url(MANIFEST), scopes=(pull("team/app"),))

    [token_request] = registry.requests("/token")
    assert {
        "grant_type": ["refresh_token"],
        "refresh_token": ["refresh-me"],
        "service": ["fake-registry"],
        "client_id": ["relocator"],
        "scope": ["repository:team/app:pull"],
    } == parse_qs(token_request.body.decode())
    assert None is token_request.authorization


async def test_registry_token_is_sent_as_is(
    serve: Callable[[], Awaitable[FakeHost]], connect: Connect
) -> None:
    """A configured registry token is the bearer token; no token endpoint is asked."""
    registry = await serve()
    registry.route("GET", MANIFEST, bearer_protected(registry, reply(body=b"manifest")))
    env = {
        "RELOCATOR_REGISTRY_HOSTNAME": registry.host,
        "RELOCATOR_REGISTRY_REGISTRY_TOKEN": "given",
    }

    async with connect(registry, env=env) as client:
        await get(client, registry.url(MANIFEST))

    assert [None, "Bearer given"] == [s.authorization for s in registry.requests(MANIFEST)]
    assert [] == registry.requests("/token")


async def test_basic_challenge_is_answered_with_the_users_credentials(
    serve: Callable[[], Awaitable[FakeHost]], connect: Connect
) -> None:
    """A 401 Basic challenge is retried once with `Authorization: Basic`."""
    registry = await serve()
    expected = basic("alice", "s3cret")
    registry.route(
        "GET", MANIFEST,
        protected(
            reply(body=b"manifest"), realm="fake", scheme="Basic", accept=lambda v: v == expected
        ),
    )

    async with connect(registry, env=login(registry)) as client:
        body = await get(client, registry.url(MANIFEST))

    assert b"manifest" == body
    assert [None, expected] == [s.authorization for s in registry.requests(MANIFEST)]


async def test_basic_challenge_without_credentials_is_an_auth_error_with_a_hint(
    serve: Callable[[], Awaitable[FakeHost]], connect: Connect
) -> None:
    """Anonymous requests to a Basic-protected registry fail once, telling how to log in."""
    registry = await serve()
    registry.route("GET", MANIFEST, challenge("fake", "Basic"))

    async with connect(registry) as client:
        with pytest.raises(AuthError, match="requires authentication") as caught:
            await get(client, registry.url(MANIFEST))

    assert 401 == caught.value.status
    assert "docker login" in (caught.value.hint or "")
    assert 1 == len(registry.requests(MANIFEST))


async def test_401_after_a_fresh_token_is_not_retried(
    serve: Callable[[], Awaitable[FakeHost]], connect: Connect
) -> None:
    """A token the registry still refuses ends the request: one refresh, no retries."""
    registry = await serve()
    registry.route("GET", "/token", token_issuer())
    registry.route("GET", MANIFEST, challenge(registry.url("/token")))

    async with connect(registry, env=login(registry)) as client:
        with pytest.raises(AuthError) as caught:
            await get(client, registry.url(MANIFEST), scopes=(pull("team/app"),))

    assert 401 == caught.value.status
    assert (1, 2) == (len(registry.requests("/token")), len(registry.requests(MANIFEST)))


@pytest.mark.parametrize(
    ("token_handler", "error", "message"),
    [
        pytest.param(
            reply_json({"expires_in": 300}), AuthError, "without a token", id="no-token"
        ),
        pytest.param(
            reply_json({"token": "T", "pad": "x" * MAX_TOKEN_BODY}), LimitExceeded,
            "more than the", id="body-over-cap",
        ),
        pytest.param(
            chunked(json.dumps({"token": "T", "pad": "x" * MAX_TOKEN_BODY}).encode()),
            LimitExceeded, "more than the", id="chunked-body-over-cap",
        ),
        pytest.param(reply(401), AuthError, r"refused access .* \(HTTP 401\)", id="refused"),
        pytest.param(redirect("/elsewhere", 302), AuthError, r"HTTP 302", id="redirected"),
    ],
)
async def test_bad_token_responses_fail_the_request(
    token_handler: Handler,
    error: type[RelocatorError],
    message: str,
    serve: Callable[[], Awaitable[FakeHost]],
    connect: Connect,
) -> None:
    """
    A token answer without a token, larger than MAX_TOKEN_BODY, refused or redirected
    fails the request with an error naming the problem.
    """
    registry = await serve()
    registry.route("GET", "/token", token_handler)
    registry.route("GET", MANIFEST, bearer_protected(registry, reply(body=b"manifest")))

    async with connect(registry, env=login(registry)) as client:
        with pytest.raises(error, match=message):
            await get(client, registry.url(MANIFEST), scopes=(pull("team/app"),))

    assert [] == registry.requests("/elsewhere")


async def test_refused_token_hint_names_where_the_credentials_came_from(
    serve: Callable[[], Awaitable[FakeHost]], connect: Connect
) -> None:
    """When the token endpoint refuses our credentials, the hint names their source."""
    registry = await serve()
    registry.route("GET", "/token", reply(403))
    registry.route("GET", MANIFEST, bearer_protected(registry, reply()))

    async with connect(registry, env=login(registry)) as client:
        with pytest.raises(AuthError) as caught:
            await get(client, registry.url(MANIFEST), scopes=(pull("team/app"),))

    assert 403 == caught.value.status
    assert "RELOCATOR_REGISTRY_*" in (caught.value.hint or "")


async def test_bearer_challenge_without_realm_is_an_auth_error(
    serve: Callable[[], Awaitable[FakeHost]], connect: Connect
) -> None:
    """A Bearer challenge that names no token endpoint cannot be answered."""
    registry = await serve()
    registry.route("GET", MANIFEST, reply(401, headers={"WWW-Authenticate": 'Bearer service="x"'}))

    async with connect(registry, env=login(registry)) as client:
        with pytest.raises(AuthError, match="without realm"):
            await get(client, registry.url(MANIFEST), scopes=(pull("team/app"),))


async def test_scope_named_in_the_challenge_is_asked_for_too(
    serve: Callable[[], Awaitable[FakeHost]], connect: Connect
) -> None:
    """
    A challenge naming a scope the request did not (a cross-repository mount's source)
    gets that scope added to the token request, after the request's own.
    """
    registry = await serve()
    registry.route("GET", "/token", token_issuer())
    realm = registry.url("/token")
    registry.route(
        "POST", BLOB,
        reply(401, headers={"WWW-Authenticate": (
            f'Bearer realm="{realm}",service="fake-registry",'
            'scope="repository:src/app:pull",error="insufficient_scope"'
        )}),
        reply(201),
    )

    async with connect(registry, env=login(registry)) as client, client.request(
        "POST", registry.url(BLOB), what="mount", body=b"", ok=(201,),
        scopes=(push("dst/app"),),
    ):
        pass

    assert [["repository:dst/app:pull,push", "repository:src/app:pull"]] == [
        s.query.getall("scope") for s in registry.requests("/token")
    ]


async def test_secrets_never_reach_the_log_or_errors(
    serve: Callable[[], Awaitable[FakeHost]],
    connect: Connect,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """
    Debug logging of a Basic-authenticated token exchange, a bearer request and a
    presigned CDN redirect shows neither password, token nor signature; nor do errors.
    """
    registry, cdn = await serve(), await serve()
    registry.route("GET", "/token", token_issuer("TOKEN-SECRET-"))
    registry.route(
        "GET", BLOB,
        bearer_protected(registry, redirect(cdn.url("/1?X-Amz-Signature=SIG-SECRET"))),
    )
    cdn.route("GET", "/1", redirect("/2?X-Amz-Signature=SIG-SECRET", 302))
    cdn.route("GET", "/2", reply(403, b'{"errors": [{"code": "DENIED", "message": "expired"}]}'))

    caplog.set_level(logging.DEBUG, logger="relocator")
    async with connect(registry, cdn, env=login(registry, password="PW-SECRET")) as client:
        with pytest.raises(AuthError) as caught:
            await get(client, registry.url(BLOB), scopes=(pull("team/app"),))

    assert [None, None] == [s.authorization for s in cdn.seen]
    assert "X-Amz-Signature=REDACTED" in caplog.text
    for text in (caplog.text, str(caught.value), caught.value.hint or ""):
        assert "SECRET" not in text


@pytest.mark.parametrize(
    "proxy_variables",
    [
        {"HTTPS_PROXY": "http://proxy.example:3128", "NO_PROXY": "bypass.example"},
        {"https_proxy": "http://proxy.example:3128", "no_proxy": "bypass.example"},
    ],
)
async def test_proxies_come_from_the_environment(
    proxy_variables: dict[str, str], monkeypatch: pytest.MonkeyPatch, connect: Connect
) -> None:
    """
    HTTPS_PROXY is used for https registries except those NO_PROXY names, and not at all
    when `use_env_proxy` is off.
    """
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in proxy_variables.items():
        monkeypatch.setenv(name, value)
    proxied, bypassed = "https://reg.example/v2/", "https://bypass.example/v2/"

    with aioresponses() as mocked:
        for url in (proxied, bypassed):
            stub(mocked, "GET", url, status=200, repeat=True)
        async with connect(use_env_proxy=True) as client:
            await get(client, proxied)
            await get(client, bypassed)
        async with connect(use_env_proxy=False) as client:
            await get(client, proxied)

        proxies = [
            call.kwargs.get("proxy")
            for url in (proxied, bypassed)
            for call in mocked.requests[("GET", URL(url))]
        ]

    assert ["http://proxy.example:3128", None, None] == proxies


@pytest.mark.parametrize(
    ("realm", "insecure"),
    [
        pytest.param("http://auth.example/token", (), id="http-realm"),
        pytest.param("http://auth.example/token", ("auth.example",), id="http-realm-insecure"),
        pytest.param("file:///etc/passwd", (), id="file-realm"),
        pytest.param("https://user:pw@auth.example/token", (), id="realm-with-user-info"),
    ],
)
async def test_unsafe_token_realms_of_an_https_registry_are_refused(
    realm: str, insecure: tuple[str, ...], connect: Connect
) -> None:
    """
    An https registry may not send us (and our credentials) to a plain-http or non-http
    token realm, even one configured as insecure; the realm is never contacted.
    """
    url = f"https://reg.example{MANIFEST}"
    with aioresponses() as mocked:
        stub(mocked, "GET", url, status=401,
             headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="reg"'})
        async with connect(
            env=login("reg.example"), insecure_hosts=frozenset(insecure)
        ) as client:
            with pytest.raises(UnsafeRedirect):
                await get(client, url, scopes=(pull("team/app"),))

        assert [("GET", url)] == [(m, str(u)) for m, u in mocked.requests]


# --- Retries and per-host limits --------------------------------------------------


@pytest.mark.parametrize(
    ("statuses", "error", "expected_requests"),
    [
        pytest.param([503, 503, 200], None, 3, id="503-twice-then-200"),
        pytest.param([500, 502, 504, 200], None, 4, id="5xx-then-200"),
        pytest.param([408, 200], None, 2, id="408-then-200"),
        pytest.param([429, 200], None, 2, id="429-then-200"),
        pytest.param([400], RegistryError, 1, id="400"),
        pytest.param([401], AuthError, 1, id="401-without-challenge"),
        pytest.param([403], AuthError, 1, id="403"),
        pytest.param([404], NotFound, 1, id="404"),
        pytest.param([405], RegistryError, 1, id="405"),
        pytest.param([501], RegistryError, 1, id="501"),
    ],
)
async def test_only_temporary_statuses_are_retried(
    statuses: list[int], error: type[RelocatorError] | None, expected_requests: int,
    connect: Connect,
) -> None:
    """408, 429 and server trouble are retried; 400, 401, 403, 404 and others are final."""
    url = f"https://reg.example{MANIFEST}"
    with aioresponses() as mocked:
        for status in statuses:
            stub(mocked, "GET", url, status=status, body=b"{}")
        async with connect() as client:
            if error is None:
                await get(client, url)
            else:
                with pytest.raises(error) as caught:
                    await get(client, url)
                assert statuses[-1] == getattr(caught.value, "status", None)

        assert expected_requests == calls(mocked, "GET", url)


async def test_temporary_error_codes_are_retried_whatever_the_status(connect: Connect) -> None:
    """A distribution TOOMANYREQUESTS error code means "try later" even on a 400."""
    url = f"https://reg.example{MANIFEST}"
    error = {"errors": [{"code": "TOOMANYREQUESTS", "message": "slow down"}]}
    with aioresponses() as mocked:
        stub(mocked, "GET", url, status=400, payload=error)
        stub(mocked, "GET", url, status=200, body=b"{}")
        async with connect() as client:
            await get(client, url)

        assert 2 == calls(mocked, "GET", url)


async def test_retries_stop_after_the_policy_attempts(connect: Connect) -> None:
    """A registry that stays down is asked 1 + `attempts` times; the last error is raised."""
    url = f"https://reg.example{MANIFEST}"
    error = {"errors": [{"code": "UNAVAILABLE", "message": "maintenance"}]}
    with aioresponses() as mocked:
        stub(mocked, "GET", url, status=503, payload=error, repeat=True)
        async with connect(retry=RetryPolicy(attempts=2, initial=0.001, jitter=0.0)) as client:
            with pytest.raises(RegistryError, match="UNAVAILABLE: maintenance") as caught:
                await get(client, url)
            state = client.hosts["reg.example"]

        assert 3 == calls(mocked, "GET", url)
        assert (3, 2) == (state.requests, state.retries)
        assert caught.value.temporary
        assert ("UNAVAILABLE",) == caught.value.codes


async def test_no_retry_when_the_caller_says_so(connect: Connect) -> None:
    """`retry=False` hands the first temporary error to the caller."""
    url = f"https://reg.example{MANIFEST}"
    with aioresponses() as mocked:
        stub(mocked, "GET", url, status=503, repeat=True)
        async with connect() as client:
            with pytest.raises(RegistryError):
                await get(client, url, retry=False)

        assert 1 == calls(mocked, "GET", url)


async def test_connection_failures_are_retried(connect: Connect) -> None:
    """A reset or refused connection is temporary and retried like a 503."""
    url = f"https://reg.example{MANIFEST}"
    with aioresponses() as mocked:
        mocked.get(url, exception=aiohttp.ClientConnectionError("reset by peer"))
        mocked.get(url, exception=aiohttp.ServerDisconnectedError())
        stub(mocked, "GET", url, status=200, body=b"manifest")
        async with connect() as client:
            body = await get(client, url)

        assert b"manifest" == body
        assert 3 == calls(mocked, "GET", url)


async def test_refused_connection_becomes_a_temporary_transport_error(connect: Connect) -> None:
    """Nobody listening: retried, then a TransportError naming the host."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        host = f"127.0.0.1:{sock.getsockname()[1]}"
    retry = RetryPolicy(attempts=1, initial=0.001, jitter=0.0)

    async with connect(insecure_hosts=frozenset({host}), retry=retry) as client:
        with pytest.raises(TransportError, match=host) as caught:
            await get(client, f"http://{host}/v2/")
        state = client.hosts[host]

    assert caught.value.temporary
    assert (2, 1) == (state.requests, state.retries)


async def test_streamed_bodies_are_sent_once(
    serve: Callable[[], Awaitable[FakeHost]], connect: Connect
) -> None:
    """A body that is an async iterable cannot be replayed, so a 503 is not retried."""
    registry = await serve()
    registry.route("GET", "/v2/", reply())
    registry.route("PUT", BLOB, reply(503))

    async def body() -> AsyncIterator[bytes]:
        yield b"layer"

    async with connect(registry) as client:
        with pytest.raises(RegistryError) as caught:
            async with client.request(
                "PUT", registry.url(BLOB), what="upload", body=body(), ok=(201,),
                headers={"Content-Length": "5"},
            ):
                pass

    assert 503 == caught.value.status
    assert 1 == len(registry.requests(BLOB))


async def test_streamed_bodies_count_towards_throughput_as_they_move(
    serve: Callable[[], Awaitable[FakeHost]], connect: Connect
) -> None:
    """
    Each piece of a streamed body, downloaded or uploaded, is told to the host's limit
    as it moves (its throughput), not the body's size once it ended.
    """
    registry = await serve()
    blob = bytes(range(256)) * 4096
    registry.route("GET", "/v2/", reply())
    registry.route("GET", BLOB, reply(body=blob))
    registry.route("PUT", BLOB, reply(201))

    async def body() -> AsyncIterator[bytes]:
        yield blob[:1000]
        yield blob[1000:]

    async with connect(registry) as client:
        limiter = client.hosts[registry.host].limiter
        down: list[int] = []
        with mock.patch.object(limiter, "moved", side_effect=down.append):
            async with client.request("GET", registry.url(BLOB), what="blob") as resp:
                received = b"".join([chunk async for chunk in resp.chunks()])
        up: list[int] = []
        with mock.patch.object(limiter, "moved", side_effect=up.append):
            async with client.request(
                "PUT", registry.url(BLOB), what="upload", body=body(), ok=(201,),
                headers={"Content-Length": str(len(blob))},
            ):
                pass

    assert (blob, len(blob), [1000, len(blob) - 1000]) == (received, sum(down), up)


async def test_streamed_upload_learns_the_challenge_first(
    serve: Callable[[], Awaitable[FakeHost]], connect: Connect
) -> None:
    """
    Before streaming a body to a host it has not talked to, the client pings `/v2/` to
    learn the auth scheme, so the one and only upload carries the token.
    """
    registry = await serve()
    registry.route("GET", "/token", token_issuer())
    registry.route("GET", "/v2/", challenge(registry.url("/token")))
    registry.route("PUT", BLOB, bearer_protected(registry, reply(201)))

    async def body() -> AsyncIterator[bytes]:
        yield b"lay"
        yield b"er"

    async with connect(registry, env=login(registry)) as client, client.request(
        "PUT", registry.url(BLOB), what="upload", body=body(), ok=(201,),
        scopes=(push("team/app"),), headers={"Content-Length": "5"},
    ) as resp:
        status = resp.status

    [upload] = registry.requests(BLOB)
    assert 201 == status
    assert ("Bearer T1", b"layer") == (upload.authorization, upload.body)
    assert [None] == [s.authorization for s in registry.requests("/v2/")]


async def test_429_with_retry_after_halves_the_host_limit_and_backs_off_the_host(
    serve: Callable[[], Awaitable[FakeHost]], connect: Connect
) -> None:
    """
    A 429 with `Retry-After` halves the host's concurrency limit and sets a backoff
    every request to that host waits for; the request is then retried.
    """
    registry = await serve()
    registry.route(
        "GET", MANIFEST, reply(429, headers={"Retry-After": "30"}), reply(body=b"manifest")
    )

    async with connect(registry, concurrency=8) as client:
        started = time.monotonic()
        body = await get(client, registry.url(MANIFEST))
        state = client.hosts[registry.host]

    assert b"manifest" == body
    assert (4, 1, 1) == (state.limiter.limit, state.throttled, state.retries)
    assert state.not_before > started


async def test_429_without_retry_after_backs_off_only_the_request(
    serve: Callable[[], Awaitable[FakeHost]], connect: Connect
) -> None:
    """Without `Retry-After` the limit still halves, but no host-wide pause is set."""
    registry = await serve()
    registry.route("GET", MANIFEST, reply(429), reply(body=b"manifest"))

    async with connect(registry, concurrency=8) as client:
        await get(client, registry.url(MANIFEST))
        state = client.hosts[registry.host]

    assert (4, 0.0) == (state.limiter.limit, state.not_before)


async def test_retry_after_is_reported_on_the_error(
    serve: Callable[[], Awaitable[FakeHost]], connect: Connect
) -> None:
    """When retries run out, the error carries the registry's `Retry-After`."""
    registry = await serve()
    registry.route("GET", MANIFEST, reply(429, headers={"Retry-After": "7"}))

    async with connect(registry) as client:
        with pytest.raises(RegistryError) as caught:
            await get(client, registry.url(MANIFEST), retry=False)

    assert (429, 7.0) == (caught.value.status, caught.value.retry_after)


async def test_requests_inside_a_held_slot_do_not_queue_for_another(
    serve: Callable[[], Awaitable[FakeHost]], connect: Connect
) -> None:
    """A task holding the only slot of a host can still make requests to that host."""
    registry = await serve()
    registry.route("GET", MANIFEST, reply(body=b"manifest"))

    async with connect(registry, concurrency=1) as client:
        with anyio.fail_after(5):
            async with client.hosts.hold([registry.host]):
                body = await get(client, registry.url(MANIFEST))

    assert b"manifest" == body


# --- Redirects ---------------------------------------------------------------------


async def test_redirect_to_another_host_drops_authorization_even_when_it_comes_back(
    serve: Callable[[], Awaitable[FakeHost]], connect: Connect
) -> None:
    """
    A blob redirect to a CDN never carries our Authorization, and neither does a
    second hop back to the registry: once dropped, credentials stay dropped.
    """
    registry, cdn = await serve(), await serve()
    registry.route("GET", "/token", token_issuer())
    registry.route("GET", BLOB, bearer_protected(registry, redirect(cdn.url("/blob"))))
    cdn.route("GET", "/blob", redirect(registry.url("/back"), 302))
    registry.route("GET", "/back", reply(body=b"layer"))

    async with connect(registry, cdn, env=login(registry)) as client:
        body = await get(client, registry.url(BLOB), scopes=(pull("team/app"),))

    assert b"layer" == body
    assert [None, "Bearer T1"] == [s.authorization for s in registry.requests(BLOB)]
    assert [None] == [s.authorization for s in cdn.seen]
    assert [None] == [s.authorization for s in registry.requests("/back")]


async def test_redirect_within_the_host_keeps_authorization(
    serve: Callable[[], Awaitable[FakeHost]], connect: Connect
) -> None:
    """A redirect to another path of the same origin keeps the token."""
    registry = await serve()
    registry.route("GET", "/token", token_issuer())
    registry.route("GET", BLOB, bearer_protected(registry, redirect("/v2/other")))
    registry.route("GET", "/v2/other", bearer_protected(registry, reply(body=b"layer")))

    async with connect(registry, env=login(registry)) as client:
        body = await get(client, registry.url(BLOB), scopes=(pull("team/app"),))

    assert b"layer" == body
    assert ["Bearer T1"] == [s.authorization for s in registry.requests("/v2/other")]


async def test_challenge_from_a_redirect_target_gets_no_credentials(
    serve: Callable[[], Awaitable[FakeHost]], connect: Connect
) -> None:
    """
    A host we were redirected to that answers 401 with its own Bearer challenge gets
    neither our token nor a token request with our credentials: the request fails
    (ggcr #2337, S2), whether or not we already held a token for the registry.
    """
    registry, other = await serve(), await serve()
    registry.route("GET", "/token", token_issuer())
    registry.route("GET", MANIFEST, bearer_protected(registry, reply(body=b"manifest")))
    registry.route("GET", BLOB, bearer_protected(registry, redirect(other.url("/blob"))))
    other.route("GET", "/token", token_issuer("STOLEN"))
    other.route("GET", "/blob", bearer_protected(other, reply(body=b"layer")))

    async with connect(registry, other, env=login(registry)) as client:
        with pytest.raises(AuthError) as first:
            await get(client, registry.url(BLOB), scopes=(pull("team/app"),))
        await get(client, registry.url(MANIFEST), scopes=(pull("team/app"),))
        with pytest.raises(AuthError) as second:
            await get(client, registry.url(BLOB), scopes=(pull("team/app"),))

    assert (401, 401) == (first.value.status, second.value.status)
    assert [None, None] == [s.authorization for s in other.seen]
    assert [] == other.requests("/token")
    assert ["Bearer T1", "Bearer T1"] == [
        s.authorization for s in registry.requests(BLOB) if s.authorization
    ]


async def test_401_after_a_hop_back_never_sends_credentials_off_the_path(
    serve: Callable[[], Awaitable[FakeHost]], connect: Connect
) -> None:
    """
    registry -> cdn -> registry/back answering 401: the refreshed token goes only to the
    original URL; neither the cdn nor the hop back ever sees Authorization.
    """
    registry, cdn = await serve(), await serve()
    registry.route("GET", "/token", token_issuer())
    registry.route("GET", MANIFEST, bearer_protected(registry, reply(body=b"manifest")))
    registry.route("GET", BLOB, bearer_protected(registry, redirect(cdn.url("/blob"))))
    cdn.route("GET", "/blob", redirect(registry.url("/back"), 302))
    registry.route("GET", "/back", challenge(registry.url("/token")))

    async with connect(registry, cdn, env=login(registry)) as client:
        await get(client, registry.url(MANIFEST), scopes=(pull("team/app"),))
        with pytest.raises(AuthError):
            await get(client, registry.url(BLOB), scopes=(pull("team/app"),))

    assert ["Bearer T1", "Bearer T2"] == [s.authorization for s in registry.requests(BLOB)]
    assert {None} == {s.authorization for s in cdn.seen}
    assert [None, None] == [s.authorization for s in registry.requests("/back")]


@pytest.mark.parametrize(("hops", "refused"), [(10, False), (11, True)])
async def test_at_most_ten_redirects_are_followed(
    hops: int, refused: bool, serve: Callable[[], Awaitable[FakeHost]], connect: Connect
) -> None:
    """Ten redirects are followed; the eleventh is refused without being requested."""
    registry = await serve()
    for n in range(hops):
        registry.route("GET", f"/hop/{n}", redirect(f"/hop/{n + 1}", 302))
    registry.route("GET", f"/hop/{hops}", reply(body=b"arrived"))

    async with connect(registry) as client:
        if refused:
            with pytest.raises(UnsafeRedirect, match="more than 10 redirects"):
                await get(client, registry.url("/hop/0"))
        else:
            assert b"arrived" == await get(client, registry.url("/hop/0"))

    assert [f"/hop/{n}" for n in range(11)] == [s.path for s in registry.seen]


async def test_redirect_loop_is_refused(
    serve: Callable[[], Awaitable[FakeHost]], connect: Connect
) -> None:
    """A redirect to itself ends with UnsafeRedirect, not a hang."""
    registry = await serve()
    registry.route("GET", "/loop", redirect("/loop", 302))

    async with connect(registry) as client:
        with pytest.raises(UnsafeRedirect):
            await get(client, registry.url("/loop"))

    assert 11 == len(registry.seen)


@pytest.mark.parametrize(
    "handler",
    [
        pytest.param(reply(302), id="no-location"),
        pytest.param(redirect("ftp://127.0.0.1/blob"), id="ftp"),
        pytest.param(redirect("http://127.0.0.1:99999/blob"), id="bad-port"),
    ],
)
async def test_unusable_redirects_are_refused(
    handler: Handler, serve: Callable[[], Awaitable[FakeHost]], connect: Connect
) -> None:
    """A redirect without a usable Location is an UnsafeRedirect, not a crash."""
    registry = await serve()
    registry.route("GET", BLOB, handler)

    async with connect(registry) as client:
        with pytest.raises(UnsafeRedirect):
            await get(client, registry.url(BLOB))


async def test_redirect_with_user_info_is_refused(
    serve: Callable[[], Awaitable[FakeHost]], connect: Connect
) -> None:
    """
    A Location with user info is refused: aiohttp would send it as Basic auth, or fail
    beside our own Authorization header.
    """
    registry = await serve()
    expected = basic("alice", "s3cret")
    target = f"http://mallory:pw@{registry.host}/v2/other"
    registry.route(
        "GET", BLOB,
        protected(redirect(target), realm="fake", scheme="Basic", accept=lambda v: v == expected),
    )

    async with connect(registry, env=login(registry)) as client:
        with pytest.raises(UnsafeRedirect):
            await get(client, registry.url(BLOB))

    assert [] == registry.requests("/v2/other")


@pytest.mark.parametrize(
    ("location", "insecure", "refused"),
    [
        pytest.param("http://cdn.example/blob", (), True, id="downgrade"),
        pytest.param("http://cdn.example/blob", ("cdn.example",), False, id="insecure-target"),
        pytest.param("https://cdn.example/blob", (), False, id="https"),
    ],
)
async def test_https_to_http_redirect_is_refused(
    location: str, insecure: tuple[str, ...], refused: bool, connect: Connect
) -> None:
    """An https registry may not send us to plain http unless that host is insecure."""
    url = f"https://reg.example{BLOB}"
    with aioresponses() as mocked:
        stub(mocked, "GET", url, status=307, headers={"Location": location})
        stub(mocked, "GET", location, status=200, body=b"layer")
        async with connect(insecure_hosts=frozenset(insecure)) as client:
            if refused:
                with pytest.raises(UnsafeRedirect, match="https to plain http"):
                    await get(client, url)
            else:
                assert b"layer" == await get(client, url)

        assert (0 if refused else 1) == calls(mocked, "GET", location)


async def test_redirects_of_writes_are_not_followed(connect: Connect) -> None:
    """Only GET and HEAD follow redirects; a PUT's 307 goes back to the caller."""
    url = f"https://reg.example{MANIFEST}"
    with aioresponses() as mocked:
        stub(mocked, "PUT", url, status=307, headers={"Location": "https://other.example/x"})
        async with connect() as client, client.request(
            "PUT", url, what="push", body=b"{}", ok=(201, 307)
        ) as resp:
            status = resp.status

        assert 307 == status
        assert 0 == calls(mocked, "PUT", "https://other.example/x")


# --- Bodies ------------------------------------------------------------------------


async def test_requests_ask_for_identity_encoding(
    serve: Callable[[], Awaitable[FakeHost]], connect: Connect
) -> None:
    """Every registry request says `Accept-Encoding: identity` and names relocator."""
    registry = await serve()
    registry.route("GET", MANIFEST, reply(body=b"manifest"))

    async with connect(registry) as client:
        await get(client, registry.url(MANIFEST))

    [seen] = registry.seen
    assert "identity" == seen.headers.get("Accept-Encoding")
    assert seen.headers.get("User-Agent", "").startswith("relocator/")


GZIP = {"Content-Encoding": "gzip"}
# Hashes do not compress, so a truncated gzip of this is cut mid-stream.
DOCUMENT = json.dumps(
    {"schemaVersion": 2, "pad": [hashlib.sha256(bytes([i])).hexdigest() for i in range(100)]}
).encode()


@pytest.mark.parametrize(
    ("encoding", "encoded"),
    [
        ("gzip", gzip.compress(DOCUMENT)),
        ("x-gzip", gzip.compress(DOCUMENT)),
        ("deflate", zlib.compress(DOCUMENT)),
    ],
)
async def test_compressed_json_is_decoded_but_chunks_stay_raw(
    encoding: str, encoded: bytes, serve: Callable[[], Awaitable[FakeHost]], connect: Connect
) -> None:
    """
    A server that compresses despite `identity` gets its JSON decoded by `read`, but
    `chunks` hands over the bytes as sent: a blob's digest is over its raw bytes.
    """
    registry = await serve()
    registry.route("GET", MANIFEST, reply(body=encoded, headers={"Content-Encoding": encoding}))

    async with connect(registry) as client:
        read = await get(client, registry.url(MANIFEST))
        async with client.request("GET", registry.url(MANIFEST), what="blob") as resp:
            streamed = b"".join([chunk async for chunk in resp.chunks()])

    assert (DOCUMENT, encoded) == (read, streamed)


async def test_a_chunked_body_streams_whole_across_its_chunk_boundaries(
    connect: Connect,
) -> None:
    """
    A body sent in HTTP chunks whose terminators arrive after their data (so that a
    read ends exactly at a chunk's end) streams whole from `chunks`: the end of a chunk
    is not the end of the body.
    """
    pieces = [b"a" * 70000, b"b" * 5000, b"c" * 123]

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for piece in pieces:
            writer.write(b"%x\r\n" % len(piece) + piece)
            await writer.drain()
            await asyncio.sleep(0.05)  # the client reads the data before the terminator
            writer.write(b"\r\n")
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}{BLOB}"
    async with server:
        client = connect(insecure_hosts=frozenset({f"127.0.0.1:{port}"}))
        async with client, client.request("GET", url, what="blob") as resp:
            streamed = b"".join([chunk async for chunk in resp.chunks()])

    assert b"".join(pieces) == streamed


@pytest.mark.parametrize(
    ("body", "error"),
    [
        pytest.param(gzip.compress(b"\0" * (8 * 1024 * 1024)), LimitExceeded, id="gzip-bomb"),
        pytest.param(b"\x1f\x8b not really gzip", TransportError, id="not-gzip"),
        pytest.param(gzip.compress(DOCUMENT)[:-300], TransportError, id="truncated-gzip"),
        pytest.param(gzip.compress(DOCUMENT)[:-4], TransportError, id="gzip-without-trailer"),
    ],
)
async def test_compressed_bodies_are_capped_after_decoding(
    body: bytes,
    error: type[RelocatorError],
    serve: Callable[[], Awaitable[FakeHost]],
    connect: Connect,
) -> None:
    """The cap applies to the decoded size, so a small gzip bomb is refused."""
    registry = await serve()
    registry.route("GET", MANIFEST, reply(body=body, headers={"Content-Encoding": "gzip"}))

    async with connect(registry) as client:
        with pytest.raises(error):
            await get(client, registry.url(MANIFEST), limit=1024 * 1024)


async def test_empty_body_labelled_gzip_reads_as_empty(
    serve: Callable[[], Awaitable[FakeHost]], connect: Connect
) -> None:
    """An empty body is empty whatever its Content-Encoding claims."""
    registry = await serve()
    registry.route("GET", MANIFEST, reply(body=b"", headers=GZIP))

    async with connect(registry) as client:
        assert b"" == await get(client, registry.url(MANIFEST))


@pytest.mark.parametrize(
    ("size", "stream", "refused"),
    [
        pytest.param(MAX_MANIFEST_BYTES, False, False, id="at-cap"),
        pytest.param(MAX_MANIFEST_BYTES + 1, False, True, id="over-cap"),
        pytest.param(MAX_MANIFEST_BYTES, True, False, id="at-cap-chunked"),
        pytest.param(MAX_MANIFEST_BYTES + 1, True, True, id="over-cap-chunked"),
    ],
)
async def test_manifest_reads_are_capped(
    size: int,
    stream: bool,
    refused: bool,
    serve: Callable[[], Awaitable[FakeHost]],
    connect: Connect,
) -> None:
    """
    A manifest body over MAX_MANIFEST_BYTES is refused whether its Content-Length
    announces it or it arrives chunked; one of exactly the cap is read whole.
    """
    registry = await serve()
    body = b"m" * size
    registry.route("GET", MANIFEST, chunked(body) if stream else reply(body=body))

    async with connect(registry) as client:
        if refused:
            with pytest.raises(LimitExceeded, match=str(MAX_MANIFEST_BYTES)):
                await get(client, registry.url(MANIFEST))
        else:
            assert size == len(await get(client, registry.url(MANIFEST)))


def error_body(size: int) -> bytes:
    """A distribution error document padded to `size` bytes."""
    doc = {"errors": [{"code": "DENIED", "message": "nope"}], "pad": ""}
    doc["pad"] = "x" * (size - len(json.dumps(doc)))
    raw = json.dumps(doc).encode()
    assert size == len(raw)
    return raw


@pytest.mark.parametrize(
    ("handler", "codes"),
    [
        pytest.param(reply(500, error_body(MAX_ERROR_BODY)), ("DENIED",), id="at-cap"),
        pytest.param(reply(500, error_body(MAX_ERROR_BODY + 1)), (), id="over-cap"),
        pytest.param(chunked(error_body(MAX_ERROR_BODY), 500), ("DENIED",), id="at-cap-chunked"),
        pytest.param(chunked(error_body(MAX_ERROR_BODY + 1), 500), (), id="over-cap-chunked"),
        pytest.param(chunked(error_body(50 * MAX_ERROR_BODY), 500), (), id="far-over-chunked"),
        pytest.param(
            reply(500, gzip.compress(error_body(1000)), GZIP), ("DENIED",), id="gzip"
        ),
        pytest.param(
            reply(500, gzip.compress(error_body(1024 * 1024)), GZIP), (), id="gzip-bomb"
        ),
    ],
)
async def test_error_bodies_are_read_only_up_to_the_cap(
    handler: Handler,
    codes: tuple[str, ...],
    serve: Callable[[], Awaitable[FakeHost]],
    connect: Connect,
) -> None:
    """
    Error bodies are read only to build a message: one over MAX_ERROR_BODY (as sent or
    decoded) is dropped unparsed, and the status still becomes the error (a 500 stays
    temporary).
    """
    registry = await serve()
    registry.route("GET", MANIFEST, handler)

    async with connect(registry) as client:
        with pytest.raises(RegistryError) as caught:
            await get(client, registry.url(MANIFEST), retry=False)

    assert (500, codes, True) == (
        caught.value.status, caught.value.codes, caught.value.temporary
    )


async def test_broken_body_is_a_temporary_transport_error(
    serve: Callable[[], Awaitable[FakeHost]], connect: Connect
) -> None:
    """A connection that drops mid-body fails both reads as temporary (resumable)."""
    registry = await serve()
    registry.route("GET", BLOB, truncated(1000, b"x" * 10))

    async with connect(registry) as client:
        async with client.request("GET", registry.url(BLOB), what="blob") as resp:
            with pytest.raises(TransportError) as streamed:
                async for _ in resp.chunks():
                    pass
        with pytest.raises(TransportError) as read:
            await get(client, registry.url(BLOB))

    assert (True, True) == (streamed.value.temporary, read.value.temporary)


# --- Construction ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("registry", "insecure", "expected"),
    [
        ("docker.io", (), "https://registry-1.docker.io"),
        ("index.docker.io", (), "https://registry-1.docker.io"),
        ("ghcr.io", (), "https://ghcr.io"),
        ("localhost:5000", ("localhost:5000",), "http://localhost:5000"),
        ("localhost:5000", ("localhost:5001",), "https://localhost:5000"),
    ],
)
def test_base_url(
    registry: str, insecure: tuple[str, ...], expected: str, connect: Connect
) -> None:
    """Registries are reached over https unless configured insecure; Hub via its API host."""
    client = connect(insecure_hosts=frozenset(insecure))

    assert expected == client.base_url(registry)


def test_unreadable_ca_certificate_is_an_input_error(tmp_path: Path, connect: Connect) -> None:
    """
    A CA file that does not exist or is not PEM is a bad flag (exit 3, not a network
    failure): it fails at once, naming the file, without ssl's internals.
    """
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")

    for path, reason in ((tmp_path / "missing.pem", "No such file"), (bad, "no PEM")):
        with pytest.raises(InputError) as caught:
            connect(ca_cert_paths=(path,))
        assert str(path) in str(caught.value)
        assert reason in str(caught.value)
        assert "_ssl.c" not in str(caught.value)


# --- Plain http after https, as go-containerregistry -------------------------------

_NO_TLS_ERROR = aiohttp.ClientOSError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")


@pytest.mark.parametrize(
    ("host", "insecure_all", "expected_http"),
    [
        ("reg.example", False, False),
        ("reg.example", True, True),
        ("127.0.0.1:5000", False, True),
        ("localhost:5000", False, True),
        ("[::1]:5000", False, True),
        ("reg.local", False, True),
        ("reg.localhost:5000", False, True),
        ("192.168.1.9:5000", False, True),
        ("10.1.2.3", False, True),
        ("172.16.0.1:443", False, True),
        ("172.32.0.1", False, False),
        ("8.8.8.8:5000", False, False),
        ("localhost", False, False),
    ],
)
async def test_a_port_without_tls_is_asked_over_http_only_where_ggcr_would(
    connect: Connect, host: str, insecure_all: bool, expected_http: bool
) -> None:
    """
    https first; when the port answers without TLS, the request goes again over http
    for local registries (go-containerregistry's `Scheme()` rule) or every registry under
    kbld's boolean `--registry-insecure`; any other host gets the error, never http.
    Later URLs of a host that fell back are http.
    """
    with aioresponses() as mocked:
        mocked.get(f"https://{host}{MANIFEST}", exception=_NO_TLS_ERROR)
        stub(mocked, "GET", f"http://{host}{MANIFEST}", status=200, body=b"manifest")
        async with connect(insecure_all=insecure_all) as client:
            if expected_http:
                assert b"manifest" == await get(client, f"https://{host}{MANIFEST}")
                assert f"http://{host}" == client.base_url(host)
            else:
                with pytest.raises(TransportError, match="does not answer https"):
                    await get(client, f"https://{host}{MANIFEST}")
                assert f"https://{host}" == client.base_url(host)

        assert int(expected_http) == calls(mocked, "GET", f"http://{host}{MANIFEST}")


async def test_a_tls_error_on_a_local_registry_is_not_answered_with_plain_http(
    connect: Connect,
) -> None:
    """A certificate failure means the port speaks TLS: no fallback, the TLS error stands."""
    url = f"https://127.0.0.1:5000{MANIFEST}"
    with aioresponses() as mocked:
        mocked.get(url, exception=aiohttp.ClientSSLError(
            mock.Mock(), OSError(1, "CERTIFICATE_VERIFY_FAILED")))
        stub(mocked, "GET", f"http://127.0.0.1:5000{MANIFEST}", status=200)
        async with connect() as client:
            with pytest.raises(TransportError, match="TLS verification failed"):
                await get(client, url, retry=False)

        assert 0 == calls(mocked, "GET", f"http://127.0.0.1:5000{MANIFEST}")
