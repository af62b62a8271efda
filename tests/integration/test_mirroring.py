"""
Bulk mirroring options against real registries: keeping repository names, tags, and
copying only some platforms of an index.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from relocator.engine import image_tag
from tests.integration.cli import insecure, relocator
from tests.support import (
    ImageFactory,
    Pusher,
    Registry,
    RegistryRequestError,
    index,
    verify_image_tree,
)
from tests.support import push as push_to


def test_repository_template_keeps_paths_and_uploads_shared_blobs_once(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    fresh_registry: Registry,
    repository_factory: Callable[[str], str],
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    `--repository-template HOST/mirror/{repository}` lands each image under its own
    path; a base layer shared by images of three repositories is uploaded once and
    mounted into the other two.
    """
    corpus = image_factory.corpus(3, bases=1)
    images = [push(registry, repository_factory(f"app{i}"), img) for i, img in enumerate(corpus)]
    manifest = tmp_path / "m.yml"
    manifest.write_text(yaml.safe_dump({"images": [{"image": i.reference} for i in images]}))
    mark = fresh_registry.log.mark()

    result = relocator(
        capsys, "relocate", "-f", str(manifest),
        "--repository-template", f"{fresh_registry.host}/mirror/{{repository}}",
        *insecure(registry, fresh_registry),
    )

    assert 0 == result.code, result.err
    for image in images:
        verify_image_tree(fresh_registry, f"mirror/{image.repository}", image.digest,
                          hash_blobs=True)
    expected = {"images": [
        {"image": f"{fresh_registry.host}/mirror/{i.repository}@{i.digest}"} for i in images
    ]}
    assert expected == yaml.safe_load(result.out)
    requests = fresh_registry.log.requests(since=mark)
    uploads = [e for e in requests if e.method == "PUT" and "/blobs/uploads/" in e.path]
    mounts = [e for e in requests if e.method == "POST" and "mount=" in e.path and e.status == 201]
    unique = {b.digest for i in images for b in i.all_blobs()}
    shared = {b.digest for b in images[0].all_blobs()} & {b.digest for b in images[1].all_blobs()}
    assert len(unique) == len(uploads)
    assert 2 * len(shared) == len(mounts)


def test_template_with_an_unknown_field_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A template field other than {registry}, {repository}, {name} is one clear error."""
    manifest = tmp_path / "m.yml"
    manifest.write_text("images: []\n")

    result = relocator(capsys, "relocate", "-f", str(manifest),
                       "--repository-template", "reg.example/{project}")

    assert 3 == result.code
    assert "--repository-template 'reg.example/{project}'" in result.error_lines[0]


def test_preserve_tags_through_relocate_and_through_a_tarball(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    fresh_registry: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    With `--preserve-tags` the tags the inputs named are applied at the destination,
    directly and after a tarball (pkg records them, unpkg re-applies them). Without it
    only relocator's own digest tag is written.
    """
    image = push(registry, repository, image_factory.image(), tag="1.25")
    manifest = tmp_path / "m.yml"
    manifest.write_text(f"images:\n- image: {image.tagged_reference}\n")
    lock, tarball = tmp_path / "lock", tmp_path / "images.tar"
    flags = insecure(registry, fresh_registry)
    steps = [
        relocator(capsys, "-f", str(manifest), "--lock-output", str(lock), *flags),
        relocator(capsys, "relocate", "-f", str(lock), "-r", f"{fresh_registry.host}/plain",
                  *flags),
        relocator(capsys, "relocate", "-f", str(lock), "-r", f"{fresh_registry.host}/direct",
                  "--preserve-tags", *flags),
        relocator(capsys, "pkg", "-f", str(lock), "-o", str(tarball), *flags),
        relocator(capsys, "unpkg", "-f", str(lock), "-i", str(tarball), "-r",
                  f"{fresh_registry.host}/viatar", "--preserve-tags", *flags),
    ]

    assert [0, 0, 0, 0, 0] == [s.code for s in steps], "".join(s.err for s in steps)
    with fresh_registry.client() as client:
        assert (image_tag(image.digest),) == client.tags("plain")
        assert tuple(sorted(["1.25", image_tag(image.digest)])) == client.tags("direct")
        assert image.digest == client.manifest_digest("direct", "1.25")
        assert image.digest == client.manifest_digest("viatar", "1.25")


def test_platform_selection_copies_only_the_chosen_children(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    fresh_registry: Registry,
    repository: str,
    image_factory: ImageFactory,
) -> None:
    """
    `--platform linux/amd64,linux/arm64` copies those two images of a three-platform
    index, says the index is left out, and points references at the amd64 image.
    """
    children = [image_factory.image(platform=p) for p in ("linux/amd64", "linux/arm64",
                                                          "linux/s390x")]
    tree = index(children)
    with registry.client() as client:
        pushed = push_to(client, repository, tree)
    manifest = tmp_path / "m.yml"
    manifest.write_text(f"images:\n- image: {pushed.reference}\n")

    result = relocator(
        capsys, "relocate", "-f", str(manifest), "-r", f"{fresh_registry.host}/{repository}",
        "--platform", "linux/amd64,linux/arm64", *insecure(registry, fresh_registry),
    )

    assert 0 == result.code, result.err
    amd64, arm64, s390x = children
    expected = {"images": [{"image": f"{fresh_registry.host}/{repository}@{amd64.digest}"}]}
    assert expected == yaml.safe_load(result.out)
    for child in (amd64, arm64):
        verify_image_tree(fresh_registry, repository, child.digest, hash_blobs=True)
    with fresh_registry.client() as client:
        for missing in (tree.digest, s390x.digest):
            with pytest.raises(RegistryRequestError):
                client.get_manifest(repository, str(missing))
    assert "left out" in result.err
