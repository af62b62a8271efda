"""
A public registry cannot send relocator, or the user's credentials, to an internal
address: token realms, blob redirects and upload `Location`s naming loopback or
metadata addresses in any spelling, or names resolving to them, are refused in one
line (exit code 7) and the internal server receives nothing.

Every test server listens on 127.0.0.1, which is internal. A registry is made public
the way one on the internet would be: the user names it `registry.example.test`, which
resolves (through `static_hosts`) to its fault proxy, and the proxy's port is
classified public (`internal_address`). Everything else on 127.0.0.1 stays internal
unless a control test classifies it public too.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest

from relocator.transport.addresses import IPAddress, is_internal
from tests.integration.cli import Result, insecure, relocator
from tests.integration.faults_support import fast_cli, images_file, insecure_flags
from tests.support import (
    DockerConfigDir,
    ImageFactory,
    Pusher,
    Registry,
    TokenServer,
    verify_image_tree,
)
from tests.support.proxy import FaultProxy, Forward, Redirect

PUBLIC = "registry.example.test"
TOKENS = "tokens.example.test"
CDN = "cdn.example.test"
LOOPBACK = ipaddress.ip_address("127.0.0.1")


def _as_public(monkeypatch: pytest.MonkeyPatch, *ports: int) -> None:
    """
    In-process CLI runs resolve the test names to 127.0.0.1 and classify the servers
    on `ports` as public; every other address is classified as usual.
    """

    def classify(address: IPAddress, port: int) -> bool:
        return is_internal(address) and not (address == LOOPBACK and port in ports)

    fast_cli(
        monkeypatch,
        static_hosts=dict.fromkeys((PUBLIC, TOKENS, CDN), "127.0.0.1"),
        internal_address=classify,
    )


def _relocate(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, source: str, destination: str,
    *flags: str,
) -> Result:
    return relocator(
        capsys, "relocate", "-f", str(images_file(tmp_path / "images.yml", [source])),
        "-r", destination, *flags,
    )


@pytest.fixture
def public_token_registry(
    monkeypatch: pytest.MonkeyPatch,
    docker_config: DockerConfigDir,
    token_registry: Registry,
    token_server: TokenServer,
) -> Iterator[FaultProxy]:
    """
    The token registry behind a fault proxy that the user names `registry.example.test`,
    with the token server's user and password for that name.
    """
    assert token_registry.username is not None
    assert token_registry.password is not None
    with FaultProxy(token_registry.url) as proxy:
        monkeypatch.setenv("RELOCATOR_REGISTRY_HOSTNAME_0", f"{PUBLIC}:{proxy.port}")
        monkeypatch.setenv("RELOCATOR_REGISTRY_USERNAME_0", token_registry.username)
        monkeypatch.setenv("RELOCATOR_REGISTRY_PASSWORD_0", token_registry.password)
        yield proxy


@pytest.mark.parametrize(
    "realm",
    [
        pytest.param("http://0x7f000001:{port}/token", id="hex-loopback"),
        pytest.param("http://[::ffff:127.0.0.1]:{port}/token", id="ipv4-mapped-loopback"),
        pytest.param("http://127.0.0.1:{port}/token", id="loopback"),
        pytest.param("http://localhost:{port}/token", id="localhost"),
        pytest.param("http://tokens.example.test:{port}/token", id="name-resolving-to-loopback"),
        pytest.param("http://0xa9fea9fe/latest/meta-data/iam", id="hex-metadata"),
    ],
)
def test_a_public_registry_cannot_send_credentials_to_an_internal_token_realm(
    realm: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    public_token_registry: FaultProxy,
    token_registry: Registry,
    token_server: TokenServer,
    registry2: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    A public registry whose Bearer challenge names a token realm on an internal address
    (hex, IPv4-mapped, plain loopback, localhost, a name resolving to loopback, the hex
    metadata address) is refused in one line, exit code 7: the token server never sees
    a request, and the password appears nowhere.
    """
    pushed = push(token_registry, repository, image_factory.image())
    token_server.clear()
    proxy = public_token_registry
    realm_url = realm.format(port=token_server.port)
    challenge = f'Bearer realm="{realm_url}",service="{token_server.service}"'
    proxy.add(Forward(set_headers={"WWW-Authenticate": challenge}))
    _as_public(monkeypatch, proxy.port)
    realm_host = realm_url.split("/")[2]

    result = _relocate(
        capsys, tmp_path, f"{PUBLIC}:{proxy.port}/{repository}@{pushed.digest}",
        f"{registry2.host}/{repository}",
        *insecure_flags(f"{PUBLIC}:{proxy.port}", realm_host), *insecure(registry2),
    )

    assert 7 == result.code, result.err
    assert ["internal address" in line for line in result.error_lines] == [True]
    assert () == token_server.requests
    assert "pusher-secret" not in result.err + result.out


def test_a_public_registry_sends_credentials_to_a_public_token_realm(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    public_token_registry: FaultProxy,
    token_registry: Registry,
    token_server: TokenServer,
    registry2: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    The same public registry whose realm is on a host classified public gets its token
    with the user's credentials and the copy lands: the refusals above are the guard's.
    """
    pushed = push(token_registry, repository, image_factory.image())
    token_server.clear()
    proxy = public_token_registry
    realm_host = f"{TOKENS}:{token_server.port}"
    challenge = f'Bearer realm="http://{realm_host}/token",service="{token_server.service}"'
    proxy.add(Forward(set_headers={"WWW-Authenticate": challenge}))
    _as_public(monkeypatch, proxy.port, token_server.port)

    result = _relocate(
        capsys, tmp_path, f"{PUBLIC}:{proxy.port}/{repository}@{pushed.digest}",
        f"{registry2.host}/{repository}",
        *insecure_flags(f"{PUBLIC}:{proxy.port}", realm_host), *insecure(registry2),
    )

    assert 0 == result.code, result.err
    assert {"pusher"} == {r.user for r in token_server.requests}
    verify_image_tree(registry2, repository, pushed.digest, hash_blobs=True)


@pytest.mark.parametrize(
    "cdn_host", ["0x7f000001", "[::ffff:127.0.0.1]", "127.0.0.1", "2130706433", CDN]
)
def test_a_public_registry_cannot_redirect_blobs_to_internal_addresses(
    cdn_host: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    A public registry redirecting blobs to a loopback host, however written or named,
    is refused in one line (exit code 7); the internal host receives nothing.
    """
    pushed = push(registry, repository, image_factory.image())
    with FaultProxy(registry.url) as proxy:
        proxy.add(Redirect(cdn_host=cdn_host), method="GET", path="/blobs/")
        _as_public(monkeypatch, proxy.port)

        result = _relocate(
            capsys, tmp_path, f"{PUBLIC}:{proxy.port}/{repository}@{pushed.digest}",
            f"{registry2.host}/{repository}",
            *insecure_flags(f"{PUBLIC}:{proxy.port}", f"{cdn_host}:{proxy.cdn_port}"),
            *insecure(registry2),
        )
        cdn = proxy.requests(server="cdn")

    assert 7 == result.code, result.err
    assert ["internal address" in line for line in result.error_lines] == [True]
    assert [] == cdn


def test_a_public_registry_may_redirect_blobs_to_a_public_cdn(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """The same redirect to a CDN classified public is followed and the copy lands."""
    pushed = push(registry, repository, image_factory.image())
    with FaultProxy(registry.url) as proxy:
        proxy.add(Redirect(cdn_host=CDN), method="GET", path="/blobs/")
        _as_public(monkeypatch, proxy.port, proxy.cdn_port)

        result = _relocate(
            capsys, tmp_path, f"{PUBLIC}:{proxy.port}/{repository}@{pushed.digest}",
            f"{registry2.host}/{repository}",
            *insecure_flags(f"{PUBLIC}:{proxy.port}"), *insecure(registry2),
        )
        cdn = proxy.requests(server="cdn")

    assert 0 == result.code, result.err
    assert len(pushed.all_blobs()) == len(cdn)
    verify_image_tree(registry2, repository, pushed.digest, hash_blobs=True)


@pytest.mark.parametrize("host", ["0x7f000001", "[::ffff:127.0.0.1]", "localhost"])
def test_a_public_registry_cannot_move_an_upload_to_an_internal_address(
    host: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    A public destination handing out an upload `Location` on a loopback spelling (here
    of its own port) is refused in one line (exit code 7); no upload byte is sent.
    """
    pushed = push(registry, repository, image_factory.image())
    with FaultProxy(registry2.url) as proxy2:
        location = f"http://{host}:{proxy2.port}/v2/{repository}/blobs/uploads/x?_state=s"
        proxy2.add(Forward(set_headers={"Location": location}), method="POST",
                   path="/blobs/uploads/")
        _as_public(monkeypatch, proxy2.port)

        result = _relocate(
            capsys, tmp_path, pushed.reference, f"{PUBLIC}:{proxy2.port}/{repository}",
            *insecure(registry), *insecure_flags(f"{PUBLIC}:{proxy2.port}", f"{host}:{proxy2.port}"),
        )
        uploads = [r for r in proxy2.requests() if r.method in ("PUT", "PATCH")]

    assert 7 == result.code, result.err
    assert ["upload location on another host" in line for line in result.error_lines] == [True]
    assert [] == uploads
