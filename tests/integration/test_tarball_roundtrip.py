"""
Registry -> tarball -> registry through the engine: every digest lands unchanged, in
both formats, with the tags the images had.
"""

from __future__ import annotations

import tarfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from relocator.errors import IntegrityError
from relocator.transport import HttpClient
from tests.integration.tarball_support import http_client, import_tarball, package_pushed
from tests.support import ImageFactory, PushedImage, Pusher, Registry, verify_image_tree
from tests.support.client import RegistryClient

MiB = 1024 * 1024


@pytest.fixture
async def http(registry: Registry, registry2: Registry) -> AsyncIterator[HttpClient]:
    """relocator's HTTP client for both registries."""
    async with http_client(registry, registry2) as client:
        yield client


@pytest.fixture
def shapes(
    registry: Registry,
    repository_factory: Callable[[str], str],
    image_factory: ImageFactory,
    push: Pusher,
) -> list[PushedImage]:
    """
    A small corpus sharing base layers plus every shape: OCI index, Docker manifest
    list, index of an index, an artifact with its subject, an empty layer, a layer of
    several MiB (several chunks), tagged and untagged.
    """
    repo = repository_factory("src")
    pushed = [push(registry, repo, img, tag=f"c{i}") for i, img in enumerate(
        image_factory.corpus(3)
    )]
    pushed += [
        push(registry, repo, image_factory.index(), tag="index"),
        push(registry, repo, image_factory.manifest_list()),
        push(registry, repo, image_factory.nested_index()),
        push(registry, repo, image_factory.artifact()),
        push(registry, repo, image_factory.with_empty_layer(kind="docker"), tag="empty"),
        push(registry, repo, image_factory.big_image(size=5 * MiB + 3)),
    ]
    return pushed


@pytest.mark.parametrize("fmt", ["oci", "kbld"])
async def test_registry_to_tarball_to_registry_keeps_every_digest(
    tmp_path: Path,
    http: HttpClient,
    registry2: Registry,
    client2: RegistryClient,
    repository: str,
    shapes: list[PushedImage],
    fmt: Any,
) -> None:
    """
    Packaging images from one registry and importing the tarball into another lands
    every manifest, index child, config and layer with its digest unchanged (hashed
    from what the destination serves); the OCI format also carries the tags the images
    had (kbld's format has no field for them).
    """
    out = tmp_path / "images.tar"

    packaged = await package_pushed(out, shapes, http, fmt)
    images, imported = await import_tarball(out, http, f"{registry2.host}/{repository}")

    unique_blobs = {b.digest for p in shapes for b in p.all_blobs()}
    assert len(unique_blobs) == packaged.blobs_copied
    assert {p.digest for p in shapes} <= {i.digest for i in images}
    assert len(unique_blobs) == imported.blobs_copied
    for pushed in shapes:
        verify_image_tree(registry2, repository, pushed.digest, hash_blobs=True,
                          expected=pushed.image)
        if pushed.tag is not None and fmt == "oci":
            assert pushed.digest == client2.manifest_digest(repository, pushed.tag)


async def test_importing_twice_moves_nothing_the_second_time(
    tmp_path: Path,
    http: HttpClient,
    registry2: Registry,
    repository: str,
    image_factory: ImageFactory,
    registry: Registry,
    push: Pusher,
    repository_factory: Callable[[str], str],
) -> None:
    """A second import of the same tarball finds every image present and reads no blob."""
    pushed = [push(registry, repository_factory("src"), image_factory.index())]
    out = tmp_path / "images.tar"
    await package_pushed(out, pushed, http)
    await import_tarball(out, http, f"{registry2.host}/{repository}")

    _, again = await import_tarball(out, http, f"{registry2.host}/{repository}")

    assert (0, 0) == (again.blobs_copied, again.bytes_copied)
    assert ["present"] == [i.how for i in again.images]


async def test_a_tampered_tarball_imported_through_the_library_leaves_no_image_behind(
    tmp_path: Path,
    http: HttpClient,
    registry: Registry,
    registry2: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
    repository_factory: Callable[[str], str],
) -> None:
    """
    A Python caller importing a tarball through the engine's entry point gets the same
    guarantee as `unpkg`: the tarball declares itself an untrusted source, so one blob
    whose bytes no longer match its name leaves no manifest of the tarball at the
    destination, not even those of images whose own blobs were intact.
    """
    source = repository_factory("src")
    intact = push(registry, source, image_factory.image(layer_sizes=(1024,)))
    tampered = push(registry, source, image_factory.image(layer_sizes=(24 * MiB,)))
    out = tmp_path / "images.tar"
    await package_pushed(out, [intact, tampered], http)
    layer = tampered.image.layers[0]
    with tarfile.open(out) as tar:
        offset = tar.getmember(f"sha256-{layer.digest.hex}.tar.gz").offset_data
    with out.open("r+b") as f:  # flip one byte in the middle of the layer
        f.seek(offset + layer.size // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    mark = registry2.log.mark()

    with pytest.raises(IntegrityError):
        await import_tarball(out, http, f"{registry2.host}/{repository}")

    assert [] == [
        entry.path for entry in registry2.log.requests(since=mark)
        if entry.method == "PUT" and "/manifests/" in entry.path
    ]
