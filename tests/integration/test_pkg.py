"""
The seed's air-gap flows through the command line against real registries:
`pkg` on the connected side, `unpkg` into another registry with no access to the source.
"""

from __future__ import annotations

import tarfile
from collections import Counter
from pathlib import Path

import pytest
import yaml

from tests.integration.cli import insecure, relocator
from tests.support import ImageFactory, PushedImage, Pusher, Registry, verify_image_tree


@pytest.fixture
def app(
    registry: Registry, repository: str, image_factory: ImageFactory, push: Pusher
) -> list[PushedImage]:
    """Two images sharing a base layer, plus a multi-platform index."""
    corpus = image_factory.corpus(2, bases=1)
    return [
        push(registry, f"{repository}/web", corpus[0], tag="1.0"),
        push(registry, f"{repository}/api", corpus[1], tag="2.0"),
        push(registry, f"{repository}/proxy", image_factory.index(), tag="3.0"),
    ]


def _tagged_manifest(tmp_path: Path, images: list[PushedImage]) -> Path:
    path = tmp_path / "manifest"
    path.write_text(yaml.safe_dump({"images": [{"image": i.tagged_reference} for i in images]}))
    return path


def test_seed_pkg_unpkg_flow_with_lock_file(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    fresh_registry: Registry,
    app: list[PushedImage],
) -> None:
    """
    resolve -> lock; pkg -f lock; unpkg -f lock into another registry (the source is
    not contacted); `-f manifest -f lock.copied` prints the imported references. The
    tarball holds every blob once.
    """
    manifest = _tagged_manifest(tmp_path, app)
    lock, copied = tmp_path / "manifest.lock", tmp_path / "manifest.lock.copied"
    tarball = tmp_path / "packaged-images.tar"
    destination = f"{fresh_registry.host}/app1"

    resolved = relocator(capsys, "-f", str(manifest), "--lock-output", str(lock),
                         *insecure(registry))
    packaged = relocator(capsys, "pkg", "-f", str(lock), "--output", str(tarball),
                         *insecure(registry))
    source_mark = registry.log.mark()
    imported = relocator(
        capsys, "unpkg", "-f", str(lock), "--input", str(tarball), "--repository",
        destination, "--lock-output", str(copied), *insecure(fresh_registry),
    )
    final = relocator(capsys, "-f", str(manifest), "-f", str(copied))

    assert (0, 0, 0, 0) == (resolved.code, packaged.code, imported.code, final.code), (
        packaged.err + imported.err
    )
    assert "" == packaged.out
    package_lines = packaged.err.splitlines()
    assert "package | exporting 3 images..." == package_lines[0]
    assert {f"package | will export {i.reference}" for i in app} <= set(package_lines)
    assert "package | exported 3 images" in package_lines
    assert any(line.startswith("package | done: file '") for line in package_lines)
    unpackage_lines = imported.err.splitlines()
    assert "unpackage | importing 3 images..." == unpackage_lines[0]
    assert "unpackage | imported 3 images" in unpackage_lines
    assert () == registry.log.requests(since=source_mark)
    for image in app:
        verify_image_tree(fresh_registry, "app1", image.digest, hash_blobs=True,
                          expected=image.image)
    # A lock file alone has no documents to print, as with kbld.
    assert "" == imported.out
    expected = [{"image": f"{destination}@{i.digest}"} for i in app]
    assert expected == yaml.safe_load(final.out)["images"]
    with tarfile.open(tarball) as archive:
        names = Counter(m.name for m in archive.getmembers() if m.isfile() or m.islnk())
    assert [] == [name for name, count in names.items() if count > 1]
    unique = {str(b.digest) for i in app for b in i.all_blobs()}
    assert unique <= {name.replace("blobs/sha256/", "sha256:") for name in names}
    # The base layer shared by images of two source repositories is fetched once.
    summary = next(line for line in package_lines if "blobs copied" in line)
    assert f"{len(unique)} blobs copied" in summary


def test_seed_pkg_unpkg_flow_directly_against_configuration(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    fresh_registry: Registry,
    app: list[PushedImage],
) -> None:
    """
    `relocator -f manifest > resolved`; pkg and unpkg take the resolved manifest; unpkg
    prints it with the imported references. The kbld tar format works the same way.
    """
    manifest = _tagged_manifest(tmp_path, app)
    resolved = tmp_path / "resolved-manifest"
    resolution = relocator(capsys, "-f", str(manifest), *insecure(registry))
    resolved.write_text(resolution.out)
    results = []
    for fmt in ("oci", "kbld"):
        tarball = tmp_path / f"images-{fmt}.tar"
        results.append(relocator(capsys, "pkg", "-f", str(resolved), "-o", str(tarball),
                                 "--format", fmt, *insecure(registry)))
        results.append(relocator(
            capsys, "unpkg", "-f", str(resolved), "-i", str(tarball), "-r",
            f"{fresh_registry.host}/{fmt}", *insecure(fresh_registry),
        ))

    assert [0, 0, 0, 0, 0] == [resolution.code] + [r.code for r in results], (
        "".join(r.err for r in results)
    )
    for fmt, result in zip(("oci", "kbld"), results[1::2], strict=True):
        expected = [{"image": f"{fresh_registry.host}/{fmt}@{i.digest}"} for i in app]
        # The resolved manifest's kbld annotation passes through unchanged, as with kbld.
        printed = yaml.safe_load(result.out)
        assert expected == printed["images"]
        assert "kbld.k14s.io/images" in printed["metadata"]["annotations"]
        for image in app:
            verify_image_tree(fresh_registry, fmt, image.digest, hash_blobs=True)


def test_pkg_needs_digest_references(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, app: list[PushedImage]
) -> None:
    """pkg of a tag reference fails in one line and writes no tarball."""
    manifest = _tagged_manifest(tmp_path, app[:1])
    tarball = tmp_path / "out.tar"

    result = relocator(capsys, "pkg", "-f", str(manifest), "-o", str(tarball))

    assert 3 == result.code
    assert [f"Expected image '{app[0].tagged_reference}' to be in digest form"] == [
        line.split("relocator: error: ")[1].split(" (i.e.")[0] for line in result.error_lines
    ]
    assert [] == list(tmp_path.glob("*.tar*")) + list(tmp_path.glob(".out.tar*"))


def test_unpkg_of_an_image_missing_from_the_tarball_pushes_nothing(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    fresh_registry: Registry,
    app: list[PushedImage],
) -> None:
    """An input image that the tarball lacks is named before anything is pushed."""
    packaged = tmp_path / "one.yml"
    packaged.write_text(yaml.safe_dump({"images": [{"image": app[0].reference}]}))
    wanted = tmp_path / "two.yml"
    wanted.write_text(yaml.safe_dump({"images": [{"image": i.reference} for i in app[:2]]}))
    tarball = tmp_path / "one.tar"
    pkg = relocator(capsys, "pkg", "-f", str(packaged), "-o", str(tarball), *insecure(registry))
    mark = fresh_registry.log.mark()

    result = relocator(capsys, "unpkg", "-f", str(wanted), "-i", str(tarball), "-r",
                       f"{fresh_registry.host}/x", *insecure(fresh_registry))

    assert 0 == pkg.code, pkg.err
    assert 3 == result.code
    assert [f"Expected to find image for '{app[1].reference}'" in line
            for line in result.error_lines] == [True]
    assert () == fresh_registry.log.requests(since=mark)


def test_unpkg_of_a_tampered_blob_leaves_no_image_of_the_tarball_behind(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    fresh_registry: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    One blob whose bytes no longer match its name stops the import, and no manifest of
    the tarball is pushed, not even those of images whose own blobs were intact (their
    small blobs land long before the large tampered one is found out).
    """
    intact = push(registry, f"{repository}/a", image_factory.image(layer_sizes=(1024,)))
    tampered = push(registry, f"{repository}/b", image_factory.image(layer_sizes=(24 << 20,)))
    images = tmp_path / "images.yml"
    images.write_text(yaml.safe_dump({"images": [{"image": i.reference}
                                                 for i in (intact, tampered)]}))
    tarball = tmp_path / "images.tar"
    pkg = relocator(capsys, "pkg", "-f", str(images), "-o", str(tarball), *insecure(registry))
    assert 0 == pkg.code, pkg.err
    layer = tampered.image.layers[0]
    member = f"blobs/sha256/{layer.digest.hex}"
    with tarfile.open(tarball) as tar:
        # The layer's bytes are in its kbld-named member; the OCI name links to it.
        offset = tar.getmember(f"sha256-{layer.digest.hex}.tar.gz").offset_data
    with tarball.open("r+b") as f:  # flip one byte in the middle of the layer
        f.seek(offset + layer.size // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    mark = fresh_registry.log.mark()

    result = relocator(capsys, "unpkg", "-f", str(images), "-i", str(tarball), "-r",
                       f"{fresh_registry.host}/x", *insecure(fresh_registry))

    assert 6 == result.code, result.err
    [line] = result.error_lines
    assert member in line
    assert [] == [
        entry.path for entry in fresh_registry.log.requests(since=mark)
        if entry.method == "PUT" and "/manifests/" in entry.path
    ]
