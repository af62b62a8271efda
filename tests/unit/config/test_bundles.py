"""imgpkg bundle documents: BundleLock inputs, a bundle's images.yml, image-locations."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from relocator.config import bundle_images, bundle_locks, image_locations_text, load_inputs
from relocator.errors import ConfigError

IMGPKG = "apiVersion: imgpkg.carvel.dev/v1alpha1\n"
DIGEST = "sha256:" + "a" * 64


def test_a_bundle_lock_gives_its_image_and_tag(tmp_path: Path) -> None:
    """The bundle image is also a found image; the lock adds its tag."""
    path = tmp_path / "bundle.lock.yml"
    path.write_text(f"{IMGPKG}kind: BundleLock\nbundle:\n  image: r.test/b@{DIGEST}\n  tag: v1\n")

    inputs = load_inputs([str(path)])
    (lock,) = bundle_locks(inputs)

    assert (f"r.test/b@{DIGEST}", "v1") == (lock.image, lock.tag)
    assert [f"r.test/b@{DIGEST}"] == [f.value for f in inputs.found_images()]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("bundle: {tag: v1}\n", "BundleLock needs bundle.image"),
        (f"bundle: {{image: 'r.test/b@{DIGEST}', tag: [v1]}}\n", "bundle.tag must be a string"),
    ],
)
def test_a_malformed_bundle_lock_is_refused(tmp_path: Path, body: str, expected: str) -> None:
    """One line naming the file."""
    path = tmp_path / "bundle.lock.yml"
    path.write_text(f"{IMGPKG}kind: BundleLock\n{body}")

    with pytest.raises(ConfigError, match=expected):
        bundle_locks(load_inputs([str(path)]))


def test_images_yml_gives_digest_references_fully_qualified() -> None:
    """As imgpkg reads it: `ubuntu@sha256:..` is Docker Hub's, repeats once."""
    data = f"{IMGPKG}kind: ImagesLock\nimages:\n- image: ubuntu@{DIGEST}\n- image: ubuntu@{DIGEST}\n"

    assert (f"index.docker.io/library/ubuntu@{DIGEST}",) == bundle_images(data.encode(), "b")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (f"{IMGPKG}kind: ImagesLock\nimages:\n- image: ubuntu:22.04\n", "digest form"),
        (f"{IMGPKG}kind: ImagesLock\nimages: []\nextra: 1\n", "extra"),
        (f"{IMGPKG}kind: ImagesLock\n---\n{IMGPKG}kind: ImagesLock\n", "one ImagesLock"),
        ("- a list\n", "one ImagesLock"),
        ("apiVersion: v1\nkind: ConfigMap\n", "expected an ImagesLock"),
        ("key: [unclosed\n", "b"),
    ],
)
def test_an_images_yml_that_is_not_one_images_lock_is_refused(data: str, expected: str) -> None:
    """Strict, as imgpkg: one document, known fields only, digests only."""
    with pytest.raises(ConfigError, match=expected):
        bundle_images(data.encode(), "b")


def test_image_locations_are_written_sorted_as_imgpkg_writes_them() -> None:
    """imgpkg's ImageLocations document, images sorted, leading `---`."""
    text = image_locations_text({f"r.test/z@{DIGEST}": True, f"r.test/a@{DIGEST}": False})

    assert text.startswith("---\n")
    assert {
        "apiVersion": "imgpkg.carvel.dev/v1alpha1",
        "kind": "ImageLocations",
        "images": [
            {"image": f"r.test/a@{DIGEST}", "isBundle": False},
            {"image": f"r.test/z@{DIGEST}", "isBundle": True},
        ],
    } == yaml.safe_load(text)
