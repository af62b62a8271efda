"""
imgpkg bundles: a BundleLock, or a bundle image, brings every image its
`.imgpkg/images.yml` names through relocate, pkg and unpkg, keeps its tag, and leaves
imgpkg's image-locations record beside it; hostile bundle layers are refused whole.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest
import yaml

from relocator.oci import Digest, Reference
from tests.bundle_support import (
    bundle,
    bundle_lock,
    gzip_stream,
    images_lock,
    tar_layer,
)
from tests.integration.cli import insecure, relocator
from tests.support import Registry, RegistryClient, verify_image_tree
from tests.support.images import ImageFactory, PushedImage, Pusher

FIXTURES = Path(__file__).parents[1] / "data" / "carvel"
IMGPKG_BUNDLE = "fdd0ec999360a98225d6d96e975912d0335530945d0ac9a59ed7ff53773619d2"
IMGPKG_IMAGES = (
    "60365c0aabe636300e03a85105afb6bdcfe519d2014d30b4b78cb2a4a839fe75",
    "a0c63f338ff279e3e01f8ba53450f012fed3fcb922befe63673daad6181789d4",
)


def _seed_bundle(
    registry: Registry, repository: str, image_factory: ImageFactory, push: Pusher
) -> tuple[PushedImage, list[PushedImage]]:
    """A bundle tagged `v1` naming a Docker image and an OCI index of `registry`."""
    images = [
        push(registry, f"{repository}/app", image_factory.docker_image()),
        push(registry, f"{repository}/multi", image_factory.index()),
    ]
    layer = tar_layer([
        ("config/app.yml", b"kind: ConfigMap\n"),
        (".imgpkg/images.yml", images_lock([p.reference for p in images])),
    ])
    pushed = push(registry, f"{repository}/bundle", bundle(layer), tag="v1")
    return pushed, images


def _locations(client: RegistryClient, repository: str, bundle_digest: Digest) -> dict[str, bool]:
    """The image-locations record at `repository` for the bundle: image -> isBundle."""
    tag = f"sha256-{bundle_digest.hex}.image-locations.imgpkg"
    manifest = json.loads(client.get_manifest(repository, tag).body)
    (layer,) = manifest["layers"]
    data = gzip.decompress(client.get_blob(repository, layer["digest"]))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.extractfile("image-locations.yml")
        assert member is not None
        doc = yaml.safe_load(member.read())
    assert ("ImageLocations", "imgpkg.carvel.dev/v1alpha1") == (doc["kind"], doc["apiVersion"])
    return {entry["image"]: entry["isBundle"] for entry in doc["images"]}


def test_relocate_of_a_bundle_lock_copies_the_bundle_its_images_and_locations(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    fresh_registry: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    `relocate -f bundle.lock` lands the bundle under its tag, both images it names and
    the image-locations record `imgpkg pull -b` reads, every digest kept; the printed
    BundleLock names the bundle at the destination.
    """
    pushed, images = _seed_bundle(registry, repository, image_factory, push)
    lock = tmp_path / "bundle.lock.yml"
    lock.write_text(bundle_lock(pushed.reference, "v1"))

    result = relocator(capsys, "relocate", "-f", str(lock), "-r", f"{fresh_registry.host}/dst",
                       *insecure(registry, fresh_registry))

    assert 0 == result.code, result.err
    with fresh_registry.client() as client:
        for image in (pushed, *images):
            verify_image_tree(client, "dst", image.digest, hash_blobs=True)
        assert pushed.digest == client.manifest_digest("dst", "v1")
        assert {p.reference: False for p in images} == _locations(client, "dst", pushed.digest)
    printed = yaml.safe_load(result.out)
    assert {"image": f"{fresh_registry.host}/dst@{pushed.digest}", "tag": "v1"} == printed["bundle"]


@pytest.mark.parametrize("fmt", ["oci", "kbld"])
def test_pkg_and_unpkg_of_a_bundle_keep_its_tag_and_images(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    fresh_registry: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
    fmt: str,
) -> None:
    """
    pkg packages a bundle with its images and its tag, in imgpkg's `Tag` too (which
    `imgpkg copy --tar` re-applies); unpkg, given the bundle named by digest in plain
    YAML (recognised by its label), lands all three, re-applies `v1` without
    --preserve-tags and writes the image-locations record.
    """
    pushed, images = _seed_bundle(registry, repository, image_factory, push)
    named = tmp_path / "bundle.yml"
    named.write_text(f"image: {pushed.reference}\n")
    lock = tmp_path / "bundle.lock.yml"
    lock.write_text(bundle_lock(pushed.reference, "v1"))
    tarball = tmp_path / "bundle.tar"

    packaged = relocator(capsys, "pkg", "-f", str(lock), "-o", str(tarball), "--format", fmt,
                         *insecure(registry))
    with tarfile.open(tarball) as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None
        described = {
            item["Image"]["Manifest"]["Digest"]: item["Image"].get("Tag")
            for item in json.loads(member.read()) if item.get("Image")
        }
    assert "v1" == described[str(pushed.digest)]
    imported = relocator(capsys, "unpkg", "-f", str(named), "-i", str(tarball),
                         "-r", f"{fresh_registry.host}/dst", *insecure(fresh_registry))

    assert (0, 0) == (packaged.code, imported.code), packaged.err + imported.err
    with fresh_registry.client() as client:
        for image in (pushed, *images):
            verify_image_tree(client, "dst", image.digest, hash_blobs=True)
        assert pushed.digest == client.manifest_digest("dst", "v1")
        assert {p.reference: False for p in images} == _locations(client, "dst", pushed.digest)


def test_unpkg_imports_a_bundle_tarball_imgpkg_copy_wrote(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fresh_registry: Registry
) -> None:
    """
    `imgpkg copy -b --to-tar`'s tarball (see tests/data/carvel/README.md) lands the
    bundle under its tag `v1` with both its images, and the image-locations record.
    """
    work = tmp_path / "work"
    shutil.copytree(FIXTURES, work)

    result = relocator(capsys, "unpkg", "-f", str(work / "imgpkg-bundle.lock.yml"),
                       "-i", str(work / "imgpkg-0.43-bundle.tar"),
                       "-r", f"{fresh_registry.host}/dst", *insecure(fresh_registry))

    assert 0 == result.code, result.err
    bundle_digest = Digest("sha256", IMGPKG_BUNDLE)
    with fresh_registry.client() as client:
        for hex_digest in (IMGPKG_BUNDLE, *IMGPKG_IMAGES):
            verify_image_tree(client, "dst", Digest("sha256", hex_digest), hash_blobs=True)
        assert bundle_digest == client.manifest_digest("dst", "v1")
        located = _locations(client, "dst", bundle_digest)
    assert {Reference.parse(i).digest for i in located} == {
        Digest("sha256", d) for d in IMGPKG_IMAGES
    }


def _hostile(kind: str, images: str) -> bytes:
    """A bundle layer of the given hostile kind (its images.yml would name `images`)."""
    lock = images_lock([images])
    if kind == "gzip-bomb":
        # A 300 MiB member of zeros before images.yml: inflating it passes the 256 MiB cap.
        info = tarfile.TarInfo("padding")
        info.size = 300 * 1024 * 1024
        return gzip_stream([info.tobuf(format=tarfile.USTAR_FORMAT), *[bytes(1024 * 1024)] * 300])
    if kind == "huge-images-yml":
        return tar_layer([(".imgpkg/images.yml", lock + b"#" * (9 * 1024 * 1024))])
    if kind == "traversal":
        return tar_layer([("../../etc/cron.d/x", b"x"), (".imgpkg/images.yml", lock)])
    if kind == "too-many-members":
        header = tarfile.TarInfo("f").tobuf(format=tarfile.USTAR_FORMAT)
        return gzip_stream([header], repeat=10_001)
    if kind == "not-an-images-lock":
        return tar_layer([(".imgpkg/images.yml", b"apiVersion: v1\nkind: ConfigMap\n")])
    if kind == "no-images-yml":
        return tar_layer([("config/app.yml", b"kind: ConfigMap\n")])
    raise AssertionError(kind)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("gzip-bomb", "layer inflates past"),
        ("huge-images-yml", ".imgpkg/images.yml is"),
        ("traversal", "member name outside the bundle '../../etc/cron.d/x'"),
        ("too-many-members", "layer has more than 10000 members"),
        ("not-an-images-lock", "expected an ImagesLock"),
        ("no-images-yml", "expected to find .imgpkg/images.yml"),
    ],
)
def test_a_hostile_bundle_layer_is_refused_with_one_line_and_nothing_copied(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    fresh_registry: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
    kind: str,
    expected: str,
) -> None:
    """
    A bundle whose layer is a gzip bomb, holds an oversized images.yml, an unsafe
    member name, too many members, something else than an ImagesLock or no images.yml
    is refused before anything is copied: one error line naming the bundle, non-zero
    exit, an empty destination.
    """
    app = push(registry, f"{repository}/app", image_factory.image())
    pushed = push(registry, f"{repository}/bundle",
                  bundle(_hostile(kind, app.reference)), tag="v1")
    lock = tmp_path / "bundle.lock.yml"
    lock.write_text(bundle_lock(pushed.reference, "v1"))

    result = relocator(capsys, "relocate", "-f", str(lock), "-r", f"{fresh_registry.host}/dst",
                       *insecure(registry, fresh_registry))

    assert 0 != result.code
    assert 1 == len(result.error_lines), result.err
    assert expected in result.error_lines[0]
    assert str(pushed.digest) in result.error_lines[0]
    assert "Traceback" not in result.err
    with fresh_registry.client() as client:
        assert () == client.catalog()


def test_a_nested_bundle_brings_its_own_images(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    fresh_registry: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    A bundle naming another bundle brings the inner bundle and the inner bundle's
    images, as imgpkg copies nested bundles; each bundle gets its image-locations
    record, the outer one marking the inner as a bundle.
    """
    inner, images = _seed_bundle(registry, repository, image_factory, push)
    outer_layer = tar_layer([(".imgpkg/images.yml", images_lock([inner.reference]))])
    outer = push(registry, f"{repository}/outer", bundle(outer_layer), tag="v2")
    lock = tmp_path / "bundle.lock.yml"
    lock.write_text(bundle_lock(outer.reference, "v2"))

    result = relocator(capsys, "relocate", "-f", str(lock), "-r", f"{fresh_registry.host}/dst",
                       *insecure(registry, fresh_registry))

    assert 0 == result.code, result.err
    with fresh_registry.client() as client:
        for image in (outer, inner, *images):
            verify_image_tree(client, "dst", image.digest, hash_blobs=True)
        assert outer.digest == client.manifest_digest("dst", "v2")
        assert {inner.reference: True} == _locations(client, "dst", outer.digest)
        assert {p.reference: False for p in images} == _locations(client, "dst", inner.digest)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--repository-template", "HOST/mirror/{repository}"], "--repository-template"),
        (["-r", "REPO", "--platform", "linux/amd64"], "--platform cannot be used with"),
    ],
    ids=["template", "platform"],
)
def test_a_bundle_that_would_arrive_unusable_is_refused(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    fresh_registry: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
    flags: list[str],
    expected: str,
) -> None:
    """
    A bundle whose images would land outside its repository (a template) or be cut
    to one platform is refused with one line (exit 3) and nothing is copied.
    """
    pushed, _ = _seed_bundle(registry, repository, image_factory, push)
    lock = tmp_path / "bundle.lock.yml"
    lock.write_text(bundle_lock(pushed.reference, "v1"))
    flags = [f.replace("REPO", f"{fresh_registry.host}/dst").replace("HOST", fresh_registry.host)
             for f in flags]

    result = relocator(capsys, "relocate", "-f", str(lock), *flags,
                       *insecure(registry, fresh_registry))

    assert 3 == result.code, result.err
    assert 1 == len(result.error_lines), result.err
    assert expected in result.error_lines[0]
    with fresh_registry.client() as client:
        assert () == client.catalog()
