"""
Interoperability with skopeo's `oci-archive` transport: skopeo pushes the tarballs we
write, and we import the ones skopeo writes, every digest unchanged.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from relocator.store.tarball import REF_NAME
from relocator.transport import HttpClient
from tests.integration.tarball_support import http_client, import_tarball, package_pushed
from tests.support import Image, ImageFactory, Pusher, Registry, verify_image_tree

# skopeo 1.9.3 (containers/image 5.23) limits, checked by hand against that version:
_DOCKER_TYPES = (
    "skopeo 1.9.3 only considers index.json entries of OCI media types, so it cannot "
    "find a Docker manifest or manifest list in an OCI layout"
)
_NESTED = (
    "skopeo 1.9.3 cannot copy an index whose entry is itself an index "
    "('Unexpectedly received a manifest list instead of a manifest for a single image')"
)
_CONVERT_LIST = (
    "skopeo 1.9.3 must convert a Docker manifest list to an OCI index to write an OCI "
    "layout, which --preserve-digests forbids"
)

SHAPES: dict[str, Callable[[ImageFactory], Image]] = {
    "oci-image": lambda f: f.image(),
    "oci-index": lambda f: f.index(),
    "docker-image": lambda f: f.docker_image(),
    "docker-list": lambda f: f.manifest_list(),
    "nested-index": lambda f: f.nested_index(),
    "artifact": lambda f: f.artifact(),
    "empty-layer": lambda f: f.with_empty_layer(),
}


@pytest.fixture
async def http(registry: Registry, registry2: Registry) -> AsyncIterator[HttpClient]:
    """relocator's HTTP client for both registries."""
    async with http_client(registry, registry2) as client:
        yield client


def _shape(name: str, reason: str | None) -> object:
    return pytest.param(name, marks=pytest.mark.skip(reason=reason)) if reason else name


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    """Run skopeo (a missing skopeo fails the test: an interop test skipped proves nothing)."""
    binary = shutil.which("skopeo")
    if binary is None:
        pytest.fail("skopeo is not installed", pytrace=False)
    return subprocess.run(
        [binary, "--insecure-policy", *args], capture_output=True, text=True, timeout=300,
        check=False,
    )


@pytest.mark.parametrize(
    "shape",
    [
        _shape("oci-image", None),
        _shape("oci-index", None),
        _shape("docker-image", _DOCKER_TYPES),
        _shape("docker-list", _DOCKER_TYPES),
        _shape("nested-index", _NESTED),
        _shape("artifact", None),
        _shape("empty-layer", None),
    ],
)
async def test_skopeo_pushes_the_tarballs_we_write(
    tmp_path: Path,
    http: HttpClient,
    registry: Registry,
    registry2: Registry,
    repository_factory: Callable[[str], str],
    image_factory: ImageFactory,
    push: Pusher,
    shape: str,
) -> None:
    """
    `skopeo copy --all --preserve-digests oci-archive:OUT:REF docker://...`, REF being
    the image's `org.opencontainers.image.ref.name`, pushes what we packaged with every
    digest unchanged.
    """
    pushed = push(registry, repository_factory("src"), SHAPES[shape](image_factory), tag="v1")
    out = tmp_path / "out.tar"
    await package_pushed(out, [pushed], http)
    with tarfile.open(out) as archive:
        index = archive.extractfile("index.json")
        assert index is not None
        [entry] = json.load(index)["manifests"]
    destination = repository_factory("dst")

    result = skopeo(
        "copy", "--all", "--preserve-digests", "--dest-tls-verify=false",
        f"oci-archive:{out}:{entry['annotations'][REF_NAME]}",
        f"docker://{registry2.host}/{destination}:v1",
    )

    assert 0 == result.returncode, result.stderr
    verify_image_tree(registry2, destination, pushed.digest, hash_blobs=True,
                      expected=pushed.image)


@pytest.mark.parametrize(
    "shape",
    [
        _shape("oci-image", None),
        _shape("oci-index", None),
        _shape("docker-image", None),
        _shape("docker-list", _CONVERT_LIST),
        _shape("nested-index", _NESTED),
        _shape("artifact", None),
        _shape("empty-layer", None),
    ],
)
async def test_we_import_the_oci_archives_skopeo_writes(
    tmp_path: Path,
    http: HttpClient,
    registry: Registry,
    registry2: Registry,
    repository_factory: Callable[[str], str],
    image_factory: ImageFactory,
    push: Pusher,
    shape: str,
) -> None:
    """
    A tarball written by `skopeo copy --all --preserve-digests docker://... oci-archive:
    IN:NAME` (directory entries, root ownership, members in name order) imports with
    every digest unchanged; its bare NAME is reported as the image's name.
    """
    pushed = push(registry, repository_factory("src"), SHAPES[shape](image_factory))
    archive = tmp_path / "skopeo.tar"
    result = skopeo(
        "copy", "--all", "--preserve-digests", "--src-tls-verify=false",
        f"docker://{pushed.reference}", f"oci-archive:{archive}:{shape}",
    )
    assert 0 == result.returncode, result.stderr
    destination = repository_factory("dst")

    images, _ = await import_tarball(archive, http, f"{registry2.host}/{destination}")

    assert [(shape, None, pushed.digest)] == [(i.name, i.reference, i.digest) for i in images]
    verify_image_tree(registry2, destination, pushed.digest, hash_blobs=True,
                      expected=pushed.image)
