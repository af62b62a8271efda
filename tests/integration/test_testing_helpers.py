"""
The test helpers (`tests.support`) do what the integration tests rely on:
registries start and enforce their auth, images push and verify, verification catches
tampering. Everything runs against the real distribution registry.
"""

# Asserts read `expected == actual` (CONTRIBUTING.md); ruff calls that a Yoda condition.
from __future__ import annotations

import base64
import hashlib
import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from relocator.oci import Digest, mediatypes
from tests.support import (
    DockerConfigDir,
    ImageFactory,
    Pusher,
    Registry,
    RegistryClient,
    RegistryNotFound,
    RegistryRequestError,
    RegistryStartError,
    TLSFiles,
    TokenServer,
    TokenUser,
    VerificationError,
    fetch_manifest,
    find_registry_binary,
    image,
    running_registry,
    start_registry,
    verify_image_tree,
    verify_pushed,
)
from tests.support import push as push_image
from tests.support.images import Image, MiB


def _open(
    url: str | urllib.request.Request, *, data: bytes | None = None, ca: Path | None = None
) -> Any:
    """urllib without proxies (a CI http_proxy must not see 127.0.0.1) and with `ca`."""
    context = ssl.create_default_context(cafile=str(ca)) if ca else None
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    return opener.open(url, data=data, timeout=10)


def _get(url: str, *, headers: dict[str, str] | None = None, ca: Path | None = None) -> int:
    """Status of a GET made with urllib: a third client, independent of ours."""
    # S310: every URL here is an http(s)://127.0.0.1 one the test itself built.
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310
    try:
        with _open(request, ca=ca) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code


def _basic(username: str, password: str) -> dict[str, str]:
    return {
        "Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
    }


def _challenge(url: str) -> str:
    try:
        _open(url).close()
    except urllib.error.HTTPError as exc:
        exc.close()
        return str(exc.headers.get("WWW-Authenticate", ""))
    raise AssertionError(f"{url} answered without a challenge")


# -- registries ------------------------------------------------------------------------


def test_plain_registries_answer_v2_on_distinct_hosts(
    registry: Registry, registry2: Registry
) -> None:
    """The two plain registries are separate hosts that answer /v2/ without credentials."""
    assert registry.host != registry2.host
    assert f"http://{registry.host}" == registry.url
    assert 200 == _get(f"{registry.url}/v2/")
    assert 200 == _get(f"{registry2.url}/v2/")


def test_tls_registry_is_trusted_only_with_its_ca(tls_registry: Registry) -> None:
    """The TLS registry serves https with a certificate that only its CA file vouches for."""
    assert tls_registry.url.startswith("https://127.0.0.1:")
    assert tls_registry.ca_path is not None
    assert tls_registry.ca_path.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert 200 == _get(f"{tls_registry.url}/v2/", ca=tls_registry.ca_path)
    with pytest.raises(urllib.error.URLError) as caught:
        _get(f"{tls_registry.url}/v2/")
    assert isinstance(caught.value.reason, ssl.SSLCertVerificationError)


def test_tls_registry_takes_pushes(
    tls_registry: Registry, repository: str, image_factory: ImageFactory, push: Pusher
) -> None:
    """Images push to and verify on the TLS registry through its CA."""
    built = image_factory.index()

    push(tls_registry, repository, built, tag="v1")

    verify_pushed(tls_registry, repository, built, tag="v1", hash_blobs=True)


def test_token_server_and_registry_over_tls(
    tmp_path: Path, registry_binary: str, image_factory: ImageFactory
) -> None:
    """Registry and token server can share one CA and both serve https."""
    files = TLSFiles.create(tmp_path / "tls")
    with (
        TokenServer(tmp_path / "tokens", tls=files) as server,
        running_registry(
            tmp_path / "registry", binary=registry_binary, tls=files, token_server=server
        ) as registry,
        registry.client() as client,
    ):
        built = image_factory.image()
        push_image(client, "app", built, tag="v1")
        verify_pushed(client, "app", built, tag="v1")
    assert server.realm.startswith("https://127.0.0.1:")
    assert registry.ca_path == files.ca_path
    assert {"pusher"} == {r.user for r in server.requests}


def test_basic_auth_registry_requires_its_users(
    basic_auth_registry: Registry, basic_auth_users: dict[str, str]
) -> None:
    """htpasswd auth: 401 with a Basic challenge without or with wrong credentials, 200 with."""
    url = f"{basic_auth_registry.url}/v2/"
    assert ("alice", "alice-secret") == (basic_auth_registry.username, basic_auth_registry.password)
    assert _challenge(url).startswith("Basic ")
    assert 401 == _get(url)
    assert 401 == _get(url, headers=_basic("alice", "wrong"))
    for username, password in basic_auth_users.items():
        assert 200 == _get(url, headers=_basic(username, password))


def test_basic_auth_registry_accepts_pushes_from_its_user(
    basic_auth_registry: Registry, repository: str, image_factory: ImageFactory, push: Pusher
) -> None:
    """The pusher answers the Basic challenge; anonymous clients cannot read the result."""
    pushed = push(basic_auth_registry, repository, image_factory.image(), tag="v1")

    verify_pushed(basic_auth_registry, repository, pushed.image, tag="v1")
    with (
        basic_auth_registry.client(anonymous=True) as anonymous,
        pytest.raises(RegistryRequestError) as caught,
    ):
        anonymous.manifest_digest(repository, "v1")
    assert 401 == caught.value.status


def test_token_registry_challenges_with_the_token_server(
    token_registry: Registry, token_server: TokenServer
) -> None:
    """Without a token the registry answers 401 naming the token server's realm and service."""
    challenge = _challenge(f"{token_registry.url}/v2/")

    assert challenge.startswith("Bearer ")
    assert f'realm="{token_server.realm}"' in challenge
    assert f'service="{token_server.service}"' in challenge
    assert ("pusher", "pusher-secret") == (token_registry.username, token_registry.password)


def test_token_server_logs_scopes_and_credentials(
    token_registry: Registry,
    token_server: TokenServer,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """A push asks for pull,push on the repository with basic credentials; all is logged."""
    token_server.clear()

    push(token_registry, repository, image_factory.image(), tag="v1")

    logged = token_server.requests
    assert logged, "the token server saw no request"
    assert all(r.authorization and r.user == "pusher" for r in logged)
    assert all(r.service == token_server.service for r in logged)
    assert f"repository:{repository}:pull,push" in {s for r in logged for s in r.scopes}
    assert f"repository:{repository}:pull,push" in {g for r in logged for g in r.granted}


def test_token_scopes_are_honoured(
    token_registry: Registry,
    token_server: TokenServer,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    The pull-only user can pull but gets only `pull` and a 401 when pushing; anonymous
    clients get nothing; a wrong password is refused by the token server itself.
    """
    pushed = push(token_registry, repository, image_factory.image(), tag="v1")
    token_server.clear()

    with token_registry.client(username="puller", password="puller-secret") as puller:
        assert pushed.digest == puller.manifest_digest(repository, "v1")
        with pytest.raises(RegistryRequestError) as refused:
            puller.push_blob(repository, Digest.of(b"x"), 1, lambda: [b"x"])
    assert 401 == refused.value.status
    asked = [r for r in token_server.requests if f"repository:{repository}:pull,push" in r.scopes]
    assert asked
    assert all(("puller", (f"repository:{repository}:pull",)) == (r.user, r.granted) for r in asked)

    with (
        token_registry.client(anonymous=True) as anonymous,
        pytest.raises(RegistryRequestError) as anonymous_refused,
    ):
        anonymous.manifest_digest(repository, "v1")
    assert 401 == anonymous_refused.value.status
    assert (False, None, ()) == (
        token_server.requests[-1].authorization,
        token_server.requests[-1].user,
        token_server.requests[-1].granted,
    )

    with (
        token_registry.client(username="pusher", password="wrong") as wrong,
        pytest.raises(RegistryRequestError) as bad_password,
    ):
        wrong.ping()
    assert (401, token_server.realm) == (bad_password.value.status, bad_password.value.url)


def test_cross_repository_mount_asks_for_both_scopes(
    token_registry: Registry,
    token_server: TokenServer,
    repository_factory: Callable[[str], str],
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """A mount asks for push on the target and pull on the source, in one token request."""
    source, target = repository_factory("src"), repository_factory("dst")
    layer = push(token_registry, source, image_factory.image()).image.layers[0]
    token_server.clear()

    with token_registry.client() as client:
        assert client.push_blob(target, layer.digest, layer.size, layer.chunks, mount_from=source)
        assert layer.size == client.blob_size(target, layer.digest)

    scopes = [r.scopes for r in token_server.requests]
    assert (f"repository:{target}:pull,push", f"repository:{source}:pull") in scopes


def test_oauth_password_and_refresh_token_grants(
    token_registry: Registry, token_server: TokenServer, repository: str
) -> None:
    """
    POST /token: a password grant with access_type=offline returns a refresh token (the
    docker `identitytoken`); a refresh grant with it returns an access token that works.
    """
    scope = f"repository:{repository}:pull"

    def post(fields: dict[str, str]) -> dict[str, object]:
        data = urllib.parse.urlencode(fields).encode()
        with _open(token_server.realm, data=data) as response:
            doc: dict[str, object] = json.loads(response.read())
            return doc

    first = post(
        {
            "grant_type": "password",
            "username": "pusher",
            "password": "pusher-secret",
            "service": token_server.service,
            "scope": scope,
            "client_id": "relocator-tests",
            "access_type": "offline",
        }
    )
    refresh = first["refresh_token"]
    assert isinstance(refresh, str)
    second = post(
        {
            "grant_type": "refresh_token",
            "refresh_token": refresh,
            "service": token_server.service,
            "scope": scope,
            "client_id": "relocator-tests",
        }
    )
    token = second["access_token"]
    assert isinstance(token, str)

    url = f"{token_registry.url}/v2/{repository}/tags/list"
    # The repository is empty: 404 means the token was accepted, 401 that it was not.
    assert 404 == _get(url, headers={"Authorization": f"Bearer {token}"})
    assert 401 == _get(url, headers={"Authorization": "Bearer not-a-token"})
    assert ("refresh_token", "pusher") == (
        token_server.requests[-1].grant_type,
        token_server.requests[-1].user,
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        post({"grant_type": "refresh_token", "refresh_token": "forged", "scope": scope})
    refused.value.close()
    assert 401 == refused.value.code


def test_anonymous_pull_token_server(
    tmp_path: Path, registry_binary: str, image_factory: ImageFactory
) -> None:
    """
    With anonymous pull, clients without credentials may pull but not push; per-user
    repository patterns limit what a user may touch.
    """
    users = {"ci": TokenUser(password="ci-secret", repositories=("ci/*",))}
    with (
        TokenServer(tmp_path / "tokens", users=users, anonymous_pull=True) as server,
        (
            running_registry(tmp_path / "registry", binary=registry_binary, token_server=server)
        ) as registry,
    ):
        assert ("ci", "ci-secret") == (registry.username, registry.password)
        with registry.client() as ci:
            app = push_image(ci, "ci/app", image_factory.image(), tag="v1")
            with pytest.raises(RegistryRequestError) as outside:
                push_image(ci, "other/app", image_factory.image())
            assert 401 == outside.value.status
        with registry.client(anonymous=True) as anonymous:
            assert app.digest == anonymous.manifest_digest("ci/app", "v1")
            with pytest.raises(RegistryRequestError) as anonymous_push:
                push_image(anonymous, "ci/app", image_factory.image())
            assert 401 == anonymous_push.value.status


# -- images ----------------------------------------------------------------------------

SHAPES: dict[str, Callable[[ImageFactory], Image]] = {
    "docker-image": lambda f: f.docker_image(),
    "oci-image": lambda f: f.image(),
    "oci-index": lambda f: f.index(),
    "docker-manifest-list": lambda f: f.manifest_list(),
    "index-of-index": lambda f: f.nested_index(),
    "oci-artifact": lambda f: f.artifact(),
    "empty-layer": lambda f: f.with_empty_layer(),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_shape_pushes_and_verifies(
    shape: str, registry: Registry, repository: str, image_factory: ImageFactory, push: Pusher
) -> None:
    """Each image shape lands byte for byte: manifests hash to their digests, blobs are whole."""
    built = SHAPES[shape](image_factory)

    pushed = push(registry, repository, built, tag="v1")

    tree = verify_pushed(registry, repository, built, tag="v1", hash_blobs=True)
    assert built.digest == pushed.digest
    assert built.raw == fetch_manifest(registry, repository, pushed.digest)
    assert f"{registry.host}/{repository}@{built.digest}" == pushed.reference
    assert len(built.children) == len(pushed.children)
    assert built.digest == tree.root
    if built.subject is not None:
        # The subject was pushed first, beside the artifact rather than inside its tree.
        assert built.subject.digest not in tree.manifests
        verify_image_tree(registry, repository, built.subject.digest, expected=built.subject)


def test_shapes_have_the_documented_structure(image_factory: ImageFactory) -> None:
    """The builders produce what their names promise (media types, nesting, subject)."""
    nested = image_factory.nested_index()
    assert mediatypes.OCI_INDEX == nested.media_type
    assert mediatypes.OCI_INDEX == nested.children[0].media_type
    assert 2 == len(nested.children[0].children)

    docker_list = image_factory.manifest_list()
    assert mediatypes.DOCKER_MANIFEST_LIST == docker_list.media_type
    assert {mediatypes.DOCKER_MANIFEST} == {c.media_type for c in docker_list.children}
    assert {mediatypes.DOCKER_LAYER} == {
        l.media_type for c in docker_list.children for l in c.layers
    }

    subject = image_factory.image()
    art = image_factory.artifact(subject)
    doc = json.loads(art.raw)
    assert "application/vnd.relocator.test.artifact.v1" == doc["artifactType"]
    assert {"mediaType": mediatypes.OCI_EMPTY, "digest": str(Digest.of(b"{}")), "size": 2} == doc[
        "config"
    ]
    assert str(subject.digest) == doc["subject"]["digest"]

    empty = image_factory.with_empty_layer()
    assert 0 in {layer.size for layer in empty.layers}


def test_same_seed_same_image_other_seed_other_image() -> None:
    """Builders are deterministic per seed and distinct across seeds."""
    assert image("seed-a").digest == image("seed-a").digest
    assert image("seed-a").digest != image("seed-b").digest
    assert image("seed-a").raw == image("seed-a").raw


def test_oci_artifact_subject_need_not_exist(
    registry: Registry, repository: str, image_factory: ImageFactory
) -> None:
    """
    Distribution 2.8.2 ignores `subject`: an artifact whose subject is absent is
    accepted, and there is no referrers API (404).
    """
    art = image_factory.artifact()
    with registry.client() as client:
        for blob in art.blobs:
            client.push_blob(repository, blob.digest, blob.size, blob.chunks)
        client.put_manifest(repository, art.digest, art.raw, art.media_type)
        assert art.subject is not None
        assert client.manifest_digest(repository, art.subject.digest) is None
        referrers = client.call(
            "GET", f"/v2/{repository}/referrers/{art.subject.digest}", expect=(200, 404)
        )
    assert 404 == referrers.status


def test_registry_refuses_schema1_and_dangling_children(
    registry: Registry, repository: str, image_factory: ImageFactory
) -> None:
    """Distribution 2.8.2 refuses schema 1 pushes and indexes whose children are missing."""
    schema1 = json.dumps(
        {
            "schemaVersion": 1,
            "name": repository,
            "tag": "v1",
            "architecture": "amd64",
            "fsLayers": [],
            "history": [],
        }
    ).encode()
    dangling = image_factory.index()
    with registry.client() as client:
        with pytest.raises(RegistryRequestError) as schema1_refused:
            client.put_manifest(repository, "v1", schema1, mediatypes.DOCKER_SCHEMA1_SIGNED)
        with pytest.raises(RegistryRequestError) as dangling_refused:
            client.put_manifest(repository, dangling.digest, dangling.raw, dangling.media_type)
    assert (400, ("MANIFEST_INVALID",)) == (
        schema1_refused.value.status,
        schema1_refused.value.codes,
    )
    assert 400 == dangling_refused.value.status
    assert {"MANIFEST_BLOB_UNKNOWN"} == set(dangling_refused.value.codes)


@pytest.mark.slow
def test_big_layer_pushes_without_being_held(
    registry: Registry, repository: str, image_factory: ImageFactory, push: Pusher
) -> None:
    """The 64 MiB layer is regenerated from its seed, uploaded, and HEAD reports its size."""
    big = image_factory.big_image()
    layer = max(big.layers, key=lambda b: b.size)
    assert 64 * MiB == layer.size
    assert layer.data is None, "a 64 MiB layer must not be kept in memory"

    push(registry, repository, big, tag="v1")

    with registry.client() as client:
        assert 64 * MiB == client.blob_size(repository, layer.digest)
    verify_pushed(registry, repository, big, tag="v1")


def test_corpus_shares_base_layers(
    fresh_registry: Registry, repository_factory: Callable[[str], str], image_factory: ImageFactory
) -> None:
    """
    Six images on three bases share their base layers: pushed into one repository, each
    distinct blob is uploaded once and the registry saw one upload per distinct blob.
    """
    images = image_factory.corpus(6, bases=3)
    all_blobs = [b.digest for img in images for b in img.blobs]
    distinct = set(all_blobs)
    assert images[0].layers[:2] == images[3].layers[:2]
    assert images[0].layers[:2] != images[1].layers[:2]
    repo = repository_factory("corpus")
    mark = fresh_registry.log.mark()

    with fresh_registry.client() as client:
        for n, img in enumerate(images):
            push_image(client, repo, img, tag=f"app-{n}")

    # Each distinct blob uploaded exactly once: as many uploads as digests, same digests.
    assert (len(distinct), distinct) == (len(client.uploaded), set(client.uploaded))
    assert len(all_blobs) - len(distinct) == len(client.skipped)
    uploads = [
        r
        for r in fresh_registry.log.requests(since=mark)
        if r.method == "PUT" and r.route == "upload"
    ]
    assert len(distinct) == len(uploads)
    for img in images:
        verify_image_tree(fresh_registry, repo, img.digest, expected=img)


# -- verification ----------------------------------------------------------------------


def test_verification_rejects_a_wrong_expectation(
    registry: Registry, repository: str, image_factory: ImageFactory, push: Pusher
) -> None:
    """A digest the registry lacks, a wrong expected image and a wrong tag all raise."""
    pushed = push(registry, repository, image_factory.index(), tag="v1")
    other = image_factory.index()

    with pytest.raises(VerificationError, match="not found"):
        verify_image_tree(registry, repository, Digest.of(b"no such manifest"))
    with pytest.raises(VerificationError, match="not found"):
        fetch_manifest(registry, repository, other.digest)
    with pytest.raises(VerificationError, match="manifests"):
        verify_image_tree(registry, repository, pushed.digest, expected=other)
    with pytest.raises(VerificationError, match="expected"):
        verify_pushed(registry, repository, other, tag="v1")


def test_verification_detects_tampered_storage(
    fresh_registry: Registry, repository: str, image_factory: ImageFactory, push: Pusher
) -> None:
    """
    Bytes changed behind the registry's back are caught: a manifest no longer hashing
    to its digest, a layer with the right size but the wrong content.
    """
    pushed = push(fresh_registry, repository, image_factory.image(), tag="v1")
    layer = pushed.image.layers[0]
    verify_pushed(fresh_registry, repository, pushed.image, hash_blobs=True)

    def data_file(digest: Digest) -> Path:
        return (
            fresh_registry.storage
            / "docker/registry/v2/blobs"
            / digest.algorithm
            / digest.hex[:2]
            / digest.hex
            / "data"
        )

    original = data_file(layer.digest).read_bytes()
    data_file(layer.digest).write_bytes(bytes([original[0] ^ 0xFF]) + original[1:])
    with pytest.raises(VerificationError, match="hashing to"):
        verify_image_tree(fresh_registry, repository, pushed.digest, hash_blobs=True)
    # Without hashing bodies, only sizes are checked, and the size is still right.
    verify_image_tree(fresh_registry, repository, pushed.digest)

    manifest = data_file(pushed.digest)
    manifest.write_bytes(manifest.read_bytes().replace(b"   ", b"  ", 1))
    with pytest.raises(VerificationError, match="hash to"):
        fetch_manifest(fresh_registry, repository, pushed.digest)
    assert hashlib.sha256(manifest.read_bytes()).hexdigest() != pushed.digest.hex


# -- lifecycle -------------------------------------------------------------------------


def test_wipe_empties_the_registry_on_the_same_url(
    fresh_registry: Registry, repository: str, image_factory: ImageFactory
) -> None:
    """After wipe() the registry answers on the same URL and holds nothing."""
    url = fresh_registry.url
    with fresh_registry.client() as client:
        pushed = push_image(client, repository, image_factory.image(), tag="v1")
        assert (repository,) == client.catalog()

        fresh_registry.wipe()

        # The same client reconnects: its kept-alive connection died with the process.
        assert () == client.catalog()
        assert client.manifest_digest(repository, pushed.digest) is None
    assert (url, True) == (fresh_registry.url, fresh_registry.running)


def test_stop_ends_the_process(tmp_path: Path, registry_binary: str) -> None:
    """stop() ends the registry; a second stop() is harmless; the port stops answering."""
    with running_registry(tmp_path, binary=registry_binary) as registry:
        alive = registry.running
        registry.stop()
        registry.stop()
        assert (True, False) == (alive, registry.running)
        with pytest.raises(urllib.error.URLError):
            _get(f"{registry.url}/v2/")


def test_registry_log_records_requests(registry: Registry, repository: str) -> None:
    """The access log shows requests made after a mark, with method, path and status."""
    mark = registry.log.mark()

    assert 404 == _get(f"{registry.url}/v2/{repository}/tags/list")

    entries = registry.log.requests(since=mark)
    assert [("GET", f"/v2/{repository}/tags/list", 404, "tags")] == [
        (e.method, e.path, e.status, e.route) for e in entries
    ]


def test_startup_failure_quotes_the_registry_log(tmp_path: Path, registry_binary: str) -> None:
    """A registry that cannot start raises RegistryStartError with its own words."""
    broken = {
        "http": {
            "tls": {
                "certificate": str(tmp_path / "missing.pem"),
                "key": str(tmp_path / "missing-key.pem"),
            }
        }
    }
    with pytest.raises(RegistryStartError, match=r"(?s)exited with status 1.*missing\.pem"):
        start_registry(tmp_path / "r", binary=registry_binary, extra_config=broken)


def test_missing_binary_is_reported_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    """When the binary is missing the error says how to install it."""
    find_registry_binary.cache_clear()
    monkeypatch.setenv("RELOCATOR_TEST_REGISTRY_BINARY", "no-such-registry-binary")
    try:
        with pytest.raises(RegistryNotFound, match="not an executable"):
            find_registry_binary()
        monkeypatch.delenv("RELOCATOR_TEST_REGISTRY_BINARY")
        monkeypatch.setenv("PATH", "")
        with pytest.raises(RegistryNotFound, match="apt-get install docker-registry"):
            find_registry_binary()
    finally:
        find_registry_binary.cache_clear()


def test_docker_config_is_isolated(docker_config: DockerConfigDir, registry: Registry) -> None:
    """The fixture points HOME and DOCKER_CONFIG at an empty directory; login writes 0600."""
    assert str(docker_config.home) == os.environ["HOME"]
    assert str(docker_config.directory) == os.environ["DOCKER_CONFIG"]
    assert not any(n.startswith("RELOCATOR_REGISTRY_") for n in os.environ)
    assert {} == docker_config.read()

    path = docker_config.login(registry.host, "alice", "alice-secret", identity_token="tok")

    assert 0o600 == path.stat().st_mode & 0o777
    entry = docker_config.read()["auths"][registry.host]
    assert base64.b64encode(b"alice:alice-secret").decode() == entry["auth"]
    assert "tok" == entry["identitytoken"]


def test_clients_reject_redirects_off_host(client: RegistryClient) -> None:
    """The seeding client refuses absolute URLs on another host (a Location to elsewhere)."""
    with pytest.raises(ValueError, match="another host"):
        client.call("GET", "http://example.invalid/v2/")
