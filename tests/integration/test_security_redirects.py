"""
Credentials stay with the host they belong to, and relocator goes only where it may:
blob redirects to a CDN (one hop or two, with a challenge at the end) never carry
`Authorization`; https is never downgraded; upload locations stay on the registry;
foreign layers' URLs are never fetched; plain http only for hosts named insecure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from relocator.oci import mediatypes
from tests.integration.cli import Result, insecure, relocator
from tests.integration.faults_support import (
    Secured,
    images_file,
    insecure_flags,
    secured_proxy,
    through,
)
from tests.support import (
    Blob,
    DockerConfigDir,
    Image,
    ImageFactory,
    Pusher,
    Registry,
    TLSFiles,
    TokenServer,
    image,
    running_registry,
    verify_image_tree,
)
from tests.support.proxy import FaultProxy, Forward, Redirect

FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"


@pytest.fixture(params=["basic", "token"])
def secured(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    docker_config: DockerConfigDir,
) -> Iterator[Secured]:
    """The htpasswd or the token registry behind a fault proxy (see `secured_proxy`)."""
    with secured_proxy(request, monkeypatch, request.param) as value:
        yield value


def _relocate(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, images: list[str], destination: str,
    *flags: str,
) -> Result:
    return relocator(
        capsys, "relocate", "-f", str(images_file(tmp_path / "images.yml", images)),
        "-r", destination, *flags,
    )


def _credentials_seen(proxy: FaultProxy) -> set[str]:
    """Every `Authorization` and `Cookie` value either host of `proxy` received."""
    return {
        value
        for r in proxy.requests()
        for value in r.header_values("Authorization") + r.header_values("Cookie")
    }


@pytest.mark.parametrize("hops", [1, 2])
def test_blob_redirects_to_a_cdn_never_carry_credentials(
    hops: int,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    secured: Secured,
    registry2: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    Blobs of an authenticated registry redirected to a CDN on another host (and on
    within it) are fetched with no `Authorization` or `Cookie` on any CDN hop, while
    the registry itself got credentials on every blob request; the copy lands.
    """
    pushed = push(secured.registry, repository, image_factory.image())
    proxy = secured.proxy
    proxy.add(Redirect(hops=hops), method="GET", path="/blobs/")

    result = _relocate(
        capsys, tmp_path, [through(proxy, pushed)], f"{registry2.host}/{repository}",
        *insecure_flags(proxy.host), *insecure(registry2),
    )

    assert 0 == result.code, result.err
    cdn = proxy.requests(server="cdn")
    assert hops * len(pushed.all_blobs()) == len(cdn)
    assert [] == [r.headers for r in cdn if r.header("Authorization") or r.header("Cookie")]
    assert all(r.header("Authorization") for r in proxy.requests(server="proxy", path="/blobs/"))
    verify_image_tree(registry2, repository, pushed.digest, hash_blobs=True)


def test_a_cdn_that_asks_for_credentials_gets_none(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    secured: Secured,
    registry2: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    A CDN (reached by a redirect and a second hop) that answers 401 with its own Bearer
    challenge gets neither the registry's credentials nor its token, and is never asked
    for a token with them: the run fails in one line (exit code 4) without a secret.
    """
    pushed = push(secured.registry, repository, image_factory.image())
    proxy = secured.proxy
    proxy.add(Redirect(hops=2, challenge=True), method="GET", path="/blobs/")

    result = _relocate(
        capsys, tmp_path, [through(proxy, pushed)], f"{registry2.host}/{repository}",
        *insecure_flags(proxy.host), *insecure(registry2),
    )

    assert 4 == result.code, result.err
    assert 1 == len(result.error_lines)
    cdn = proxy.requests(server="cdn")
    assert cdn
    assert [] == [r.headers for r in cdn if r.header("Authorization") or r.header("Cookie")]
    assert [] == proxy.requests(server="cdn", path="/token")
    for secret in [secured.password, *_credentials_seen(proxy)]:
        assert secret not in result.err + result.out


def test_https_registries_are_never_downgraded_to_http(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    An https registry redirecting a blob to a plain-http CDN is refused in one line
    (exit code 7) and the CDN never contacted; naming the CDN host with
    `--registry-insecure` allows it.
    """
    pushed = push(registry, repository, image_factory.image())
    tls = TLSFiles.create(tmp_path / "tls")
    with FaultProxy(registry.url, tls=tls) as proxy:
        proxy.add(Redirect(), method="GET", path="/blobs/")
        flags = ["--registry-ca-cert-path", str(tls.ca_path), *insecure(registry2)]
        target = f"{registry2.host}/{repository}"

        refused = _relocate(capsys, tmp_path, [through(proxy, pushed)], target, *flags)
        contacted_before_opt_in = proxy.requests(server="cdn")
        allowed = _relocate(capsys, tmp_path, [through(proxy, pushed)], target, *flags,
                            *insecure_flags(proxy.cdn_host))

    assert 7 == refused.code, refused.err
    assert ["https to plain http" in line for line in refused.error_lines] == [True]
    assert [] == contacted_before_opt_in
    assert 0 == allowed.code, allowed.err
    verify_image_tree(registry2, repository, pushed.digest, hash_blobs=True)


def test_an_upload_location_on_another_host_is_refused(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    A registry handing out an upload `Location` on another host is refused in one line
    (exit code 7); that host never receives a byte.
    """
    pushed = push(registry, repository, image_factory.image())
    with FaultProxy(registry2.url) as proxy2:
        proxy2.add(Forward(location="cdn"), method="POST", path="/blobs/uploads/")

        result = _relocate(
            capsys, tmp_path, [pushed.reference], f"{proxy2.host}/{repository}",
            *insecure(registry), *insecure_flags(proxy2.host, proxy2.cdn_host),
        )
        cdn = proxy2.requests(server="cdn")

    assert 7 == result.code, result.err
    assert ["upload location on another host" in line for line in result.error_lines] == [True]
    assert [] == cdn


@pytest.fixture
def url_registry(
    tmp_path_factory: pytest.TempPathFactory, registry_binary: str
) -> Iterator[Registry]:
    """A registry that accepts manifests with foreign layers (any `urls`)."""
    config = {"validation": {"manifests": {"urls": {"allow": ["^https?://"]}}}}
    with running_registry(
        tmp_path_factory.mktemp("url-registry"), binary=registry_binary, extra_config=config
    ) as reg:
        yield reg


def _with_foreign_layer(seed: str, url: str) -> Image:
    """A Docker image whose first layer is foreign: only its `urls` say where it lives."""
    plain = image(seed, kind="docker")
    config, *layers = plain.blobs
    doc = {
        "schemaVersion": 2,
        "mediaType": mediatypes.DOCKER_MANIFEST,
        "config": config.to_json(),
        "layers": [
            {"mediaType": FOREIGN_LAYER, "size": 4096, "urls": [url],
             "digest": str(Blob.random(f"{seed}/foreign", 4096).digest)},
            *(layer.to_json() for layer in layers),
        ],
    }
    return Image.from_document(doc, blobs=plain.blobs, platform=plain.platform)


def test_foreign_layer_urls_are_never_fetched(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    url_registry: Registry,
    repository_factory: Callable[[str], str],
    push: Pusher,
    request: pytest.FixtureRequest,
) -> None:
    """
    A foreign layer is left out with a notice, never fetched from its `urls` (whose
    server would ask for credentials): nothing reaches that server, and the image,
    whose manifest keeps the URL, lands with its digest.
    """
    with FaultProxy(url_registry.url) as proxy:
        foreign = _with_foreign_layer(request.node.nodeid, f"{proxy.cdn_url}/layer.tar.gz")
        pushed = push(url_registry, repository_factory("src"), foreign)
        destination = repository_factory("dst")

        result = _relocate(
            capsys, tmp_path, [through(proxy, pushed)], f"{proxy.host}/{destination}",
            *insecure_flags(proxy.host),
        )
        cdn = proxy.requests(server="cdn")

    assert 0 == result.code, result.err
    assert [] == cdn
    assert "left out non-distributable layer" in result.err
    with url_registry.client() as client:
        assert pushed.digest == client.manifest_digest(destination, pushed.digest)


def test_local_registries_use_plain_http_without_the_flag(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    As kbld (go-containerregistry) does, a registry named `127.0.0.1:PORT` whose port
    speaks no TLS is reached over plain http with no `--registry-insecure` at all. (That
    no other host gets plain http unless named, or under the bare flag, is in
    tests/unit/transport/test_client.py: every test registry here is local.)
    """
    pushed = push(registry, repository, image_factory.image())

    result = _relocate(capsys, tmp_path, [pushed.reference], f"{registry2.host}/{repository}")

    assert 0 == result.code, result.err
    with registry2.client() as client:
        assert pushed.digest == client.manifest_digest(repository, pushed.digest)


def test_an_https_registry_cannot_send_credentials_to_a_plain_http_token_realm(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    docker_config: DockerConfigDir,
    token_registry: Registry,
    token_server: TokenServer,
    registry2: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    A registry reached over https whose Bearer challenge names a plain-http token realm
    is refused in one line (exit code 7): the token server never sees the credentials.
    """
    pushed = push(token_registry, repository, image_factory.image())
    tls = TLSFiles.create(tmp_path / "tls")
    token_server.clear()
    with FaultProxy(token_registry.url, tls=tls) as proxy:
        monkeypatch.setenv("RELOCATOR_REGISTRY_HOSTNAME_0", proxy.host)
        monkeypatch.setenv("RELOCATOR_REGISTRY_USERNAME_0", "pusher")
        monkeypatch.setenv("RELOCATOR_REGISTRY_PASSWORD_0", "pusher-secret")

        result = _relocate(
            capsys, tmp_path, [through(proxy, pushed)], f"{registry2.host}/{repository}",
            "--registry-ca-cert-path", str(tls.ca_path), *insecure(registry2),
        )

    assert 7 == result.code, result.err
    assert ["plain http" in line for line in result.error_lines] == [True]
    assert () == token_server.requests
