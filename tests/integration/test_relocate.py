"""
`relocator relocate` against real registries: every digest lands unchanged, each unique
blob crosses the wire once, a second run moves nothing, and bad input fails in one line.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from relocator.engine import CopyOptions, Job, copy_images, image_tag
from relocator.oci import Digest, Reference, Repository
from relocator.store import RegistryStore
from relocator.transport import HttpClient, Keychain, TransportSettings
from tests.integration.cli import insecure, relocator
from tests.support import (
    DockerConfigDir,
    ImageFactory,
    PushedImage,
    Pusher,
    Registry,
    TokenServer,
    verify_image_tree,
)


def _manifest(path: Path, images: list[PushedImage]) -> Path:
    path.write_text(yaml.safe_dump({"images": [{"image": i.reference} for i in images]}))
    return path


def _uploads(registry: Registry, since: int) -> list[str]:
    """Paths of blob upload sessions finished (the PUT that commits a blob)."""
    return [
        entry.path
        for entry in registry.log.requests(since=since)
        if entry.method == "PUT" and "/blobs/uploads/" in entry.path
    ]


@pytest.fixture
def shapes(
    registry: Registry,
    repository_factory: Callable[[str], str],
    image_factory: ImageFactory,
    push: Pusher,
) -> list[PushedImage]:
    """
    A 20-image corpus sharing base layers spread over four source repositories, plus
    every index shape: OCI index, Docker manifest list, index of an index, an artifact
    with a subject, an image with an empty layer and one with a 64 MiB layer.
    """
    pushed = [
        push(registry, repository_factory(f"team{i % 4}"), img)
        for i, img in enumerate(image_factory.corpus(20))
    ]
    other = repository_factory("shapes")
    base = image_factory.image()
    pushed += [
        push(registry, other, image_factory.index()),
        push(registry, other, image_factory.manifest_list()),
        push(registry, other, image_factory.nested_index()),
        push(registry, other, image_factory.artifact(subject=base)),
        push(registry, other, image_factory.with_empty_layer()),
        push(registry, other, image_factory.big_image()),
    ]
    return pushed


def test_relocate_lands_every_digest_unchanged_and_each_blob_once(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    repository: str,
    shapes: list[PushedImage],
) -> None:
    """
    Relocating the corpus and every index shape lands each image at the destination
    with the same digest (checked by hashing what the destination serves), uploads each
    unique blob exactly once, prints the rewritten YAML and writes a kbld lock.
    """
    manifest = _manifest(tmp_path / "manifest.yml", shapes)
    lock = tmp_path / "manifest.lock.copied"
    destination = f"{registry2.host}/{repository}"
    mark = registry2.log.mark()

    result = relocator(
        capsys, "relocate", "-f", str(manifest), "--repository", destination,
        "--lock-output", str(lock), *insecure(registry, registry2),
    )

    assert 0 == result.code, result.err
    for image in shapes:
        verify_image_tree(registry2, repository, image.digest, hash_blobs=True,
                          expected=image.image)
    unique_blobs = {b.digest for image in shapes for b in image.all_blobs()}
    assert len(unique_blobs) == len(_uploads(registry2, mark))
    expected_yaml = {"images": [{"image": f"{destination}@{i.digest}"} for i in shapes]}
    assert expected_yaml == yaml.safe_load(result.out)
    overrides = yaml.safe_load(lock.read_text())["overrides"]
    assert {i.reference: f"{destination}@{i.digest}" for i in shapes} == {
        o["image"]: o["newImage"] for o in overrides
    }
    assert 0o600 == lock.stat().st_mode & 0o777
    assert "relocate | exporting 26 images..." in result.err.splitlines()


def test_each_image_is_tagged_and_the_tag_points_at_it(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """Every top-level image gets the tag `sha256-<hex>.relocator` at the destination."""
    image = push(registry, repository, image_factory.index())
    manifest = _manifest(tmp_path / "m.yml", [image])

    result = relocator(
        capsys, "relocate", "-f", str(manifest), "-r", f"{registry2.host}/{repository}",
        *insecure(registry, registry2),
    )

    assert 0 == result.code, result.err
    with registry2.client() as client:
        assert image.digest == client.manifest_digest(repository, image_tag(image.digest))


async def test_second_run_moves_no_blob_bytes(
    registry: Registry,
    registry2: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """Running the same relocation twice moves zero blob bytes the second time."""
    images = [push(registry, repository, img) for img in image_factory.corpus(5)]
    images.append(push(registry, repository, image_factory.nested_index()))
    destination = Repository.parse(f"{registry2.host}/{repository}")
    jobs = [
        Job(source=Reference.parse(i.reference), destination=destination,
            tags=(image_tag(i.digest),))
        for i in images
    ]
    settings = TransportSettings(insecure_hosts=frozenset({registry.host, registry2.host}))

    async def once() -> tuple[int, int, int]:
        async with HttpClient(settings, Keychain(env={})) as client:
            store = RegistryStore(client)
            report = await copy_images(
                jobs, source=store, destination=store,
                options=CopyOptions(),
            )
        return report.bytes_copied, report.blobs_copied, len(report.images)

    first = await once()
    mark = registry2.log.mark()
    second = await once()

    expected_bytes = sum(
        b.size for b in {b.digest: b for i in images for b in i.all_blobs()}.values()
    )
    assert (expected_bytes, len(images)) == (first[0], first[2])
    assert (0, 0, len(images)) == second
    assert [] == _uploads(registry2, mark)


def test_copy_within_one_registry_mounts_instead_of_uploading(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    repository_factory: Callable[[str], str],
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """Source and destination on one registry: blobs are mounted, none uploaded."""
    image = push(registry, repository_factory("src"), image_factory.index())
    manifest = _manifest(tmp_path / "m.yml", [image])
    destination = repository_factory("dst")
    mark = registry.log.mark()

    result = relocator(
        capsys, "relocate", "-f", str(manifest), "-r", f"{registry.host}/{destination}",
        *insecure(registry),
    )

    assert 0 == result.code, result.err
    assert [] == _uploads(registry, mark)
    verify_image_tree(registry, destination, image.digest, hash_blobs=True)


def test_relocate_over_tls_with_the_registry_ca(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    tls_registry: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """An https destination is reached with `--registry-ca-cert-path` and refused without."""
    image = push(registry, repository, image_factory.image())
    manifest = _manifest(tmp_path / "m.yml", [image])
    target = f"{tls_registry.host}/{repository}"
    assert tls_registry.ca_path is not None

    refused = relocator(capsys, "relocate", "-f", str(manifest), "-r", target,
                        *insecure(registry))
    accepted = relocator(
        capsys, "relocate", "-f", str(manifest), "-r", target, *insecure(registry),
        "--registry-ca-cert-path", str(tls_registry.ca_path),
    )

    assert 7 == refused.code
    assert ["--registry-ca-cert-path" in line for line in refused.error_lines] == [True]
    assert 0 == accepted.code, accepted.err
    verify_image_tree(tls_registry, repository, image.digest, hash_blobs=True)


def test_basic_auth_credentials_from_environment(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    docker_config: DockerConfigDir,
    registry: Registry,
    basic_auth_registry: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    kbld's `KBLD_REGISTRY_*` variables authenticate to an htpasswd registry; a wrong
    password is one error line naming the registry, exit code 4, password not shown.
    """
    image = push(registry, repository, image_factory.image())
    manifest = _manifest(tmp_path / "m.yml", [image])
    target = f"{basic_auth_registry.host}/{repository}"
    flags = insecure(registry, basic_auth_registry)
    monkeypatch.setenv("KBLD_REGISTRY_HOSTNAME_0", basic_auth_registry.host)
    monkeypatch.setenv("KBLD_REGISTRY_USERNAME_0", "alice")
    monkeypatch.setenv("KBLD_REGISTRY_PASSWORD_0", "wrong-password-123")

    wrong = relocator(capsys, "relocate", "-f", str(manifest), "-r", target, *flags)
    monkeypatch.setenv("KBLD_REGISTRY_PASSWORD_0", "alice-secret")
    right = relocator(capsys, "relocate", "-f", str(manifest), "-r", target, *flags)

    assert 4 == wrong.code
    assert 1 == len(wrong.error_lines), wrong.err
    assert basic_auth_registry.host in wrong.error_lines[0]
    assert "wrong-password-123" not in wrong.err + wrong.out
    assert "Traceback" not in wrong.err
    assert 0 == right.code, right.err
    verify_image_tree(basic_auth_registry, repository, image.digest, hash_blobs=True)


def test_bearer_tokens_from_docker_config(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    docker_config: DockerConfigDir,
    registry: Registry,
    token_registry: Registry,
    token_server: TokenServer,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    Credentials in `~/.docker/config.json` are exchanged for bearer tokens scoped to
    pull and push on the destination repository; the copy lands.
    """
    image = push(registry, repository, image_factory.index())
    manifest = _manifest(tmp_path / "m.yml", [image])
    docker_config.login(token_registry.host, "pusher", "pusher-secret")
    token_server.clear()

    result = relocator(
        capsys, "relocate", "-f", str(manifest), "-r", f"{token_registry.host}/{repository}",
        *insecure(registry, token_registry),
    )

    assert 0 == result.code, result.err
    verify_image_tree(token_registry, repository, image.digest, hash_blobs=True)
    scopes = {scope for request in token_server.requests for scope in request.scopes}
    assert f"repository:{repository}:pull,push" in scopes
    assert all(request.authorization for request in token_server.requests)


def test_tag_instead_of_digest_is_one_clear_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, registry2: Registry
) -> None:
    """A tag where a digest is required names the image; exit 3; nothing contacted."""
    manifest = tmp_path / "m.yml"
    manifest.write_text("images:\n- image: nginx:1.25\n")
    mark = registry2.log.mark()

    result = relocator(capsys, "relocate", "-f", str(manifest), "-r",
                       f"{registry2.host}/x", *insecure(registry2))

    assert 3 == result.code
    expected = (
        "relocator: error: Expected image 'nginx:1.25' to be in digest form "
        "(i.e. image@digest) (hint: resolve tags first: relocator resolve -f FILE "
        "--lock-output LOCK, then pass -f LOCK)"
    )
    assert [expected] == result.error_lines
    assert () == registry2.log.requests(since=mark)


def test_unknown_host_is_one_clear_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, registry2: Registry
) -> None:
    """An image on a host that does not resolve fails in one line naming the host."""
    digest = Digest.of(b"nothing")
    manifest = tmp_path / "m.yml"
    manifest.write_text(f"images:\n- image: no-such-registry.invalid/app@{digest}\n")

    result = relocator(capsys, "relocate", "-f", str(manifest), "-r",
                       f"{registry2.host}/x", *insecure(registry2))

    assert 7 == result.code
    assert 1 == len(result.error_lines)
    assert "no-such-registry.invalid" in result.error_lines[0]
    assert "Traceback" not in result.err


class _Schema1Registry(BaseHTTPRequestHandler):
    """Serves one Docker schema 1 manifest by digest, as an old registry would."""

    body = json.dumps(
        {"schemaVersion": 1, "name": "old/app", "tag": "v1", "architecture": "amd64",
         "fsLayers": [], "history": []}
    ).encode()

    def do_GET(self) -> None:
        if self.path.startswith("/v2/old/app/manifests/"):
            self.send_response(200)
            self.send_header("Content-Type",
                             "application/vnd.docker.distribution.manifest.v1+json")
            self.send_header("Content-Length", str(len(self.body)))
            self.end_headers()
            self.wfile.write(self.body)
            return
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = do_GET

    def log_message(self, *args: object) -> None:
        """Keep the test output clean."""


@pytest.fixture
def schema1_registry() -> Iterator[str]:
    """`127.0.0.1:PORT` of a registry that only has a schema 1 manifest."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Schema1Registry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_schema1_image_is_refused_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, registry2: Registry,
    schema1_registry: str,
) -> None:
    """A Docker schema 1 image gets a clear error: only Docker v2 and OCI are supported."""
    digest = Digest.of(_Schema1Registry.body)
    manifest = tmp_path / "m.yml"
    manifest.write_text(f"images:\n- image: {schema1_registry}/old/app@{digest}\n")

    result = relocator(
        capsys, "relocate", "-f", str(manifest), "-r", f"{registry2.host}/x",
        "--registry-insecure", schema1_registry, *insecure(registry2),
    )

    assert 5 == result.code
    assert 1 == len(result.error_lines)
    assert "schema 1 (v1)" in result.error_lines[0]
    assert "only Docker v2 and OCI images and indexes are supported" in result.error_lines[0]
