"""
The seed's air-gap flow with the real kbld or imgpkg on the other side: tarballs and
lock files those tools wrote (`tests/data/carvel/`, see its README) are imported and
applied by relocator into a real registry, every digest kept.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from relocator.oci import Digest, Reference
from tests.integration.cli import insecure, relocator
from tests.support import Registry, verify_image_tree

FIXTURES = Path(__file__).parents[1] / "data" / "carvel"


def _locked() -> dict[str, Digest]:
    """The images kbld's lock file names: tag reference -> digest."""
    lock = yaml.safe_load((FIXTURES / "kbld.lock.yml").read_text())
    found = {}
    for override in lock["overrides"]:
        digest = Reference.parse(override["newImage"]).digest
        assert digest is not None
        found[override["image"]] = digest
    return found


@pytest.mark.parametrize(
    ("tarball", "lock"),
    [("kbld-0.42-pkg.tar", "kbld.lock.yml"), ("imgpkg-0.43-copy.tar", "images.lock.yml")],
    ids=["kbld-pkg", "imgpkg-copy"],
)
def test_unpkg_imports_what_kbld_and_imgpkg_packaged(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    fresh_registry: Registry,
    tarball: str,
    lock: str,
) -> None:
    """
    `relocator unpkg -f LOCK -i TAR -r REPO` with a tarball and lock file written by
    kbld (`kbld pkg`) or imgpkg (`imgpkg copy --to-tar`) lands both images (a Docker
    image and a two-platform OCI index) with their digests, every blob hashed from what
    the registry serves, and writes a lock naming them at the destination.
    """
    work = tmp_path / "work"
    shutil.copytree(FIXTURES, work)
    copied = tmp_path / "copied.lock.yml"
    repository = f"{fresh_registry.host}/imported"

    result = relocator(capsys, "unpkg", "-f", str(work / lock), "-i", str(work / tarball),
                       "-r", repository, "--lock-output", str(copied),
                       *insecure(fresh_registry))

    assert 0 == result.code, result.err
    for digest in _locked().values():
        verify_image_tree(fresh_registry, "imported", digest, hash_blobs=True)
    written = yaml.safe_load(copied.read_text())
    # As kbld writes it: each image by the tag the lock named and by its source digest.
    expected = {
        **{tag: f"{repository}@{d}" for tag, d in _locked().items()},
        **{f"{Reference.parse(t).name}@{d}": f"{repository}@{d}" for t, d in _locked().items()},
    }
    assert expected == {o["image"]: o["newImage"] for o in written["overrides"]}


@pytest.mark.parametrize(
    ("lock", "printed"),
    [("kbld.lock.yml", "kbld-locked.yml"), ("images.lock.yml", "kbld-imageslock.yml")],
    ids=["kbld-config", "imgpkg-imageslock"],
)
def test_a_lock_file_applies_as_with_kbld(
    capsys: pytest.CaptureFixture[str], lock: str, printed: str
) -> None:
    """
    `relocator -f images.yml -f LOCK` prints what kbld printed for the same inputs: the
    tagged references rewritten to the locked digests and kbld's `kbld.k14s.io/images`
    annotation with each image's origins (those the lock recorded, then `preresolved`),
    without asking any registry (the one they name is gone).
    """
    result = relocator(capsys, "-f", str(FIXTURES / "images.yml"), "-f", str(FIXTURES / lock))

    assert 0 == result.code, result.err
    ours, kbld = yaml.safe_load(result.out), yaml.safe_load((FIXTURES / printed).read_text())
    annotation = "kbld.k14s.io/images"
    assert yaml.safe_load(kbld["metadata"]["annotations"].pop(annotation)) == yaml.safe_load(
        ours["metadata"]["annotations"].pop(annotation)
    )
    assert kbld == ours

