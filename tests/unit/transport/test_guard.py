"""
The address guard: a public registry cannot send us, or our credentials, to an internal
address, however the address is written and whether a name or a pooled connection
leads there; a registry named on an internal address may.

Every fake host listens on 127.0.0.1, so a test makes a registry public by classifying
its port as public (`public`), the way a registry on the internet would be, and reaches
hosts by name through `static_hosts`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from relocator.errors import AuthError, UnsafeRedirect
from relocator.transport import HttpClient, Keychain, TransportSettings
from relocator.transport.addresses import IPAddress, is_internal
from relocator.transport.auth import pull
from relocator.transport.guard import Classifier, Guard
from tests.unit.transport.test_client import (
    BLOB,
    FAST,
    MANIFEST,
    Connect,
    FakeHost,
    any_bearer,
    basic,
    get,
    login,
    protected,
    redirect,
    reply,
    token_issuer,
)

Serve = Callable[[], Awaitable[FakeHost]]
LOOPBACK = ipaddress.ip_address("127.0.0.1")
# Spellings of a loopback host (the port is the internal server's) that a resolver reads.
LOOPBACK_FORMS = [
    "127.0.0.1", "0x7f000001", "0X7F000001", "2130706433", "0177.0.0.1", "127.1", "0x7f.1",
    "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[::1]", "0.0.0.0", "localhost", "LocalHost.",  # noqa: S104 - a target, not a bind
]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Starts fake hosts on demand; closes them after the test."""
    started: list[FakeHost] = []

    async def start() -> FakeHost:
        started.append(await FakeHost.start())
        return started[-1]

    yield start
    for host in started:
        await host.server.close()


@pytest.fixture
def connect(tmp_path: Path) -> Connect:
    """An HttpClient reaching `hosts` over plain http, with only the credentials in `env`."""

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


def public(*hosts: FakeHost) -> Classifier:
    """Addresses are classified as usual, except that `hosts` count as public."""
    ports = {host.server.port for host in hosts}

    def classify(address: IPAddress, port: int) -> bool:
        return is_internal(address) and not (address == LOOPBACK and port in ports)

    return classify


@pytest.mark.parametrize(
    "target",
    [
        *(f"http://{form}:5000/x" for form in LOOPBACK_FORMS),
        "http://0xa9fea9fe/latest/meta-data/",
        "http://169.254.169.254/latest/meta-data/",
        "http://0x0a000001/x",
        "http://10.0.0.5/x",
        "https://[fe80::1%25eth0]/x",
        "https://[fd00::5]/x",
        "http://[::ffff:a9fe:a9fe]/x",
        "http://[64:ff9b::a9fe:a9fe]/x",
        "http://224.0.0.1/x",
    ],
)
def test_a_public_registry_cannot_name_an_internal_literal(target: str) -> None:
    """
    Before connecting, a URL a public registry hands us is refused if its host is an
    internal address in any spelling, or `localhost`.
    """
    guard = Guard(is_internal)

    with guard.acting_for("https://registry.example/v2/"), pytest.raises(
        UnsafeRedirect, match="internal address"
    ):
        guard.check_url(target)


@pytest.mark.parametrize(
    "registry",
    ["http://127.0.0.1:5000/v2/", "http://0x7f000001:5000/v2/", "http://localhost:5000/v2/",
     "https://10.1.2.3/v2/", "http://[::1]:5000/v2/"],
)
def test_a_registry_named_on_an_internal_address_may_name_internal_ones(registry: str) -> None:
    """A registry the user named on an internal address may use internal token servers."""
    guard = Guard(is_internal)

    with guard.acting_for(registry):
        guard.check_url("http://0x7f000001:5001/token")
        guard.check_url("http://169.254.169.254/x")


def test_a_public_registry_may_name_public_hosts_and_itself() -> None:
    """Names (decided when connected), public literals and the registry's own host pass."""
    guard = Guard(is_internal)

    with guard.acting_for("https://registry.example/v2/"):
        for target in ["https://cdn.example/x", "https://8.8.8.8/x", "https://registry.example:443/y"]:
            guard.check_url(target)


async def test_a_public_registry_cannot_redirect_to_an_internal_literal(
    serve: Serve, connect: Connect
) -> None:
    """
    A public registry redirecting a blob to a loopback address written in any spelling
    is refused in one line; the internal server receives nothing.
    """
    registry, inner = await serve(), await serve()
    inner.route("GET", "/x", reply(body=b"internal"))
    forms = [form for form in LOOPBACK_FORMS if form != "[::1]"]  # inner is IPv4 only
    errors = []

    async with connect(registry, internal_address=public(registry)) as client:
        for form in forms:
            registry.route("GET", BLOB, redirect(f"http://{form}:{inner.server.port}/x"))
            with pytest.raises(UnsafeRedirect) as caught:
                await get(client, registry.url(BLOB))
            errors.append(caught.value)

    assert [] == inner.seen
    assert [True] * len(forms) == ["internal address" in str(e) for e in errors]


async def test_a_name_is_judged_by_the_address_it_connects_to(
    serve: Serve, connect: Connect
) -> None:
    """
    A public registry redirecting to a name that resolves to a loopback address is
    refused once connected, before the request is written: the server gets nothing.
    """
    registry, inner = await serve(), await serve()
    inner.route("GET", "/x", reply(body=b"internal"))
    registry.route("GET", BLOB, redirect(f"http://inner.example.test:{inner.server.port}/x"))

    async with connect(
        registry, internal_address=public(registry),
        static_hosts={"inner.example.test": "127.0.0.1"},
    ) as client:
        with pytest.raises(UnsafeRedirect, match=r"internal address \(loopback 127\.0\.0\.1\)"):
            await get(client, registry.url(BLOB))

    assert [] == inner.seen


async def test_a_public_registry_may_redirect_to_a_public_host(
    serve: Serve, connect: Connect
) -> None:
    """The same redirect to a host classified public is followed (the seam works)."""
    registry, cdn = await serve(), await serve()
    cdn.route("GET", "/x", reply(body=b"blob"))
    registry.route("GET", BLOB, redirect(f"http://cdn.example.test:{cdn.server.port}/x"))

    async with connect(
        registry, internal_address=public(registry, cdn),
        static_hosts={"cdn.example.test": "127.0.0.1"},
    ) as client:
        body = await get(client, registry.url(BLOB))

    assert b"blob" == body
    assert ["/x"] == [s.path for s in cdn.seen]


async def test_a_pooled_connection_to_an_internal_host_is_checked_again(
    serve: Serve, connect: Connect
) -> None:
    """
    A connection the user's internal registry opened is not handed to a public
    registry's redirect to the same host: every use of a connection is checked.
    """
    public_registry, internal_registry = await serve(), await serve()
    internal_registry.route("GET", "/x", reply(body=b"internal"))
    name = f"internal.example.test:{internal_registry.server.port}"
    public_registry.route("GET", BLOB, redirect(f"http://{name}/x"))

    async with connect(
        public_registry, internal_address=public(public_registry),
        static_hosts={"internal.example.test": "127.0.0.1"},
        insecure_hosts=frozenset({public_registry.host, name}),
    ) as client:
        first = await get(client, f"http://{name}/x")
        with pytest.raises(UnsafeRedirect, match="internal address"):
            await get(client, public_registry.url(BLOB))

    assert b"internal" == first
    assert 1 == len(internal_registry.seen)


async def test_a_registry_whose_name_connects_to_an_internal_address_is_internal(
    serve: Serve, connect: Connect
) -> None:
    """
    A registry named by a host name that resolves to an internal address may redirect
    to internal addresses: what counts is where the user's name leads, not its text.
    """
    registry, inner = await serve(), await serve()
    inner.route("GET", "/x", reply(body=b"blob"))
    registry.route("GET", BLOB, redirect(f"http://0x7f000001:{inner.server.port}/x"))
    name = f"registry.corp.test:{registry.server.port}"

    async with connect(
        static_hosts={"registry.corp.test": "127.0.0.1"}, insecure_hosts=frozenset({name})
    ) as client:
        body = await get(client, f"http://{name}{BLOB}")

    assert b"blob" == body


@pytest.mark.parametrize(
    "form", ["0x7f000001", "[::ffff:127.0.0.1]", "127.1", "localhost", "tokens.example.test"]
)
async def test_a_public_registry_cannot_send_credentials_to_an_internal_realm(
    form: str, serve: Serve, connect: Connect
) -> None:
    """
    A public registry whose Bearer challenge names a token realm on an internal address
    (any spelling, or a name resolving to one) is refused in one line: the realm never
    sees a request, let alone the user's credentials.
    """
    registry, tokens = await serve(), await serve()
    tokens.route("GET", "/token", token_issuer())
    realm_host = f"{form}:{tokens.server.port}"
    registry.route(
        "GET", MANIFEST,
        protected(reply(body=b"m"), realm=f"http://{realm_host}/token", accept=any_bearer),
    )

    async with connect(
        registry, env=login(registry), internal_address=public(registry),
        static_hosts={"tokens.example.test": "127.0.0.1"},
        insecure_hosts=frozenset({registry.host, realm_host}),
    ) as client:
        with pytest.raises(UnsafeRedirect, match="internal address"):
            await get(client, registry.url(MANIFEST), scopes=(pull("team/app"),))

    assert [] == tokens.seen


async def test_a_public_registry_may_send_credentials_to_a_public_realm(
    serve: Serve, connect: Connect
) -> None:
    """The same challenge with a realm classified public gets the user's credentials."""
    registry, tokens = await serve(), await serve()
    tokens.route("GET", "/token", token_issuer())
    realm_host = f"tokens.example.test:{tokens.server.port}"
    registry.route(
        "GET", MANIFEST,
        protected(reply(body=b"m"), realm=f"http://{realm_host}/token", accept=any_bearer),
    )

    async with connect(
        registry, env=login(registry), internal_address=public(registry, tokens),
        static_hosts={"tokens.example.test": "127.0.0.1"},
        insecure_hosts=frozenset({registry.host, realm_host}),
    ) as client:
        body = await get(client, registry.url(MANIFEST), scopes=(pull("team/app"),))

    assert b"m" == body
    assert [basic("alice", "s3cret")] == [s.authorization for s in tokens.seen]


async def test_a_plain_http_realm_on_another_host_must_be_named_insecure(
    serve: Serve, connect: Connect
) -> None:
    """
    A plain-http registry's token realm on another host (not only another port) gets
    no credentials unless that host is named with `--registry-insecure`; then it does.
    """
    registry, tokens = await serve(), await serve()
    tokens.route("GET", "/token", token_issuer())
    realm_host = f"localhost:{tokens.server.port}"
    registry.route(
        "GET", MANIFEST,
        protected(reply(body=b"m"), realm=f"http://{realm_host}/token", accept=any_bearer),
    )

    async with connect(registry, env=login(registry)) as client:
        with pytest.raises(UnsafeRedirect, match="plain http on another host") as caught:
            await get(client, registry.url(MANIFEST), scopes=(pull("team/app"),))
    refused_seen = list(tokens.seen)
    async with connect(
        registry, env=login(registry), insecure_hosts=frozenset({registry.host, realm_host})
    ) as client:
        body = await get(client, registry.url(MANIFEST), scopes=(pull("team/app"),))

    assert [] == refused_seen
    assert "--registry-insecure" in (caught.value.hint or "")
    assert b"m" == body
    assert [basic("alice", "s3cret")] == [s.authorization for s in tokens.seen]


async def test_a_token_realm_is_never_redirected(serve: Serve, connect: Connect) -> None:
    """
    A token realm answering with a redirect is an auth failure: the credentials sent
    to the realm are never sent on to where it points.
    """
    registry, elsewhere = await serve(), await serve()
    elsewhere.route("GET", "/token", token_issuer())
    registry.route("GET", "/token", redirect(elsewhere.url("/token")))
    registry.route(
        "GET", MANIFEST,
        protected(reply(body=b"m"), realm=registry.url("/token"), accept=any_bearer),
    )

    async with connect(registry, elsewhere, env=login(registry)) as client:
        with pytest.raises(AuthError):
            await get(client, registry.url(MANIFEST), scopes=(pull("team/app"),))

    assert [] == elsewhere.seen

