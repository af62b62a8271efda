"""
What a relocation asks of the destination registry, counted by a `FaultProxy` in front
of it: a re-run that finds everything costs one manifest HEAD per image; a first run
asks nothing about blobs of a repository that looks new (the mount that opens each
upload answers that); a dry run still asks, since its plan is all it shows.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from relocator.engine import image_tag
from relocator.oci import Digest
from tests.integration.cli import insecure, relocator
from tests.integration.faults_support import images_file, insecure_flags
from tests.support import ImageFactory, PushedImage, Pusher, Registry, verify_image_tree
from tests.support.proxy import FaultProxy, Forward, ProxyRequest, Respond


def _relocate(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    proxy2: FaultProxy,
    images: list[PushedImage],
    destination: str,
    *flags: str,
) -> tuple[int, str]:
    """`relocator relocate` of `images` into `destination` behind `proxy2`."""
    sources = images_file(tmp_path / "images.yml", [i.reference for i in images])
    result = relocator(
        capsys, "relocate", "-f", str(sources), "-r", f"{proxy2.host}/{destination}",
        *insecure(registry), *insecure_flags(proxy2.host), *flags,
    )
    return result.code, result.err


def _routes(requests: list[ProxyRequest]) -> list[tuple[str, str]]:
    """(method, what) of each request: what is `manifest`, `blob`, `upload` or `base`."""
    routes = []
    for r in requests:
        if "/manifests/" in r.path:
            what = "manifest"
        elif "/blobs/uploads/" in r.path:
            what = "upload"
        elif "/blobs/" in r.path:
            what = "blob"
        else:
            what = "base"
        routes.append((r.method, what))
    return routes


@pytest.fixture
def two_images(
    registry: Registry,
    repository_factory: Callable[[str], str],
    image_factory: ImageFactory,
    push: Pusher,
) -> list[PushedImage]:
    """A multi-platform index and a single image, in one source repository."""
    source = repository_factory("src")
    return [
        push(registry, source, image_factory.index(), tag="multi"),
        push(registry, source, image_factory.image(), tag="single"),
    ]


def test_a_rerun_costs_one_manifest_head_per_image(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    proxy2: FaultProxy,
    repository_factory: Callable[[str], str],
    two_images: list[PushedImage],
) -> None:
    """
    Everything already at the destination: the re-run sends one HEAD of each image's
    tag and nothing else, no blob HEAD, no push, no second look at the tag.
    """
    destination = repository_factory("dst")
    code, err = _relocate(capsys, tmp_path, registry, proxy2, two_images, destination)
    assert 0 == code, err
    first = len(proxy2.requests())

    code, err = _relocate(capsys, tmp_path, registry, proxy2, two_images, destination)

    assert 0 == code, err
    rerun = proxy2.requests()[first:]
    expected = sorted(
        f"/v2/{destination}/manifests/{image_tag(i.digest)}" for i in two_images
    )
    assert expected == sorted(r.path for r in rerun if r.method == "HEAD")
    assert [] == [(r.method, r.path) for r in rerun if r.method != "HEAD" and r.path != "/v2/"]


def test_a_first_run_asks_nothing_about_blobs_of_a_new_repository(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    proxy2: FaultProxy,
    repository_factory: Callable[[str], str],
    two_images: list[PushedImage],
) -> None:
    """
    A destination repository with none of the run's manifests gets no blob HEAD: each
    blob costs the mount that opens its upload (answered 202) and the PUT, and each
    tag is trusted from the digest the push's answer names, without reading it back.
    """
    destination = repository_factory("dst")

    code, err = _relocate(capsys, tmp_path, registry, proxy2, two_images, destination)

    assert 0 == code, err
    requests = proxy2.requests()
    routes = _routes(requests)
    blobs = {b.digest for i in two_images for b in i.all_blobs()}
    assert 0 == routes.count(("HEAD", "blob"))
    posts = [r for r in requests if r.method == "POST"]
    assert [202] * len(blobs) == [r.status for r in posts]
    assert all(f"from={destination}" in r.query for r in posts), [r.query for r in posts]
    assert len(blobs) == routes.count(("PUT", "upload"))
    tags = {f"/v2/{destination}/manifests/{image_tag(i.digest)}" for i in two_images}
    heads_of_tags = [r.path for r in requests if r.method == "HEAD" and r.path in tags]
    assert sorted(tags) == sorted(heads_of_tags)
    for image in two_images:
        verify_image_tree(registry2, destination, image.digest, hash_blobs=True)


def test_blobs_left_by_a_stopped_run_are_found_by_the_mount_not_sent_again(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    proxy2: FaultProxy,
    repository_factory: Callable[[str], str],
    two_images: list[PushedImage],
) -> None:
    """
    A run stopped by its first manifest push (refused) leaves a repository with
    blobs and no manifest: the next run sends none of those blobs again, the mount of
    each from the repository itself answers 201, and every image lands whole.
    """
    destination = repository_factory("dst")
    # Refused for good (not retried). The first refusal stops the run, and uploads
    # still in flight are cancelled: which blobs landed is read from the registry.
    proxy2.add(Respond(status=400), method="PUT", path="/manifests/")
    code, _ = _relocate(capsys, tmp_path, registry, proxy2, two_images, destination)
    assert 0 != code
    proxy2.clear_rules()
    blobs = {str(b.digest) for i in two_images for b in i.all_blobs()}
    with registry2.client() as client:
        left = {d for d in blobs if client.blob_size(destination, d) is not None}
    # A manifest is pushed only after its blobs, so the refused one left some.
    assert left
    mark = len(proxy2.requests())

    code, err = _relocate(capsys, tmp_path, registry, proxy2, two_images, destination)

    assert 0 == code, err
    rerun = proxy2.requests()[mark:]
    posts = [r for r in rerun if r.method == "POST"]
    assert len(blobs) == len(posts)
    assert {r.status for r in posts} <= {201, 202}
    found = {parse_qs(r.query)["mount"][0] for r in posts if r.status == 201}
    assert left == found
    sent = [r.path for r in rerun if r.method == "PUT" and "/blobs/" in r.path]
    assert len(blobs - left) == len(sent)
    for image in two_images:
        verify_image_tree(registry2, destination, image.digest, hash_blobs=True)


def test_a_dry_run_asks_about_every_blob(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    proxy2: FaultProxy,
    repository_factory: Callable[[str], str],
    two_images: list[PushedImage],
) -> None:
    """A dry run's plan is what it shows: it HEADs each blob, and pushes nothing."""
    destination = repository_factory("dst")

    code, err = _relocate(capsys, tmp_path, registry, proxy2, two_images, destination,
                          "--dry-run")

    assert 0 == code, err
    routes = _routes(proxy2.requests())
    blobs = {b.digest for i in two_images for b in i.all_blobs()}
    assert len(blobs) == routes.count(("HEAD", "blob"))
    assert [] == [r for r in routes if r[0] in ("POST", "PUT")]


def test_a_tag_pointing_elsewhere_is_moved_to_the_image(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    proxy2: FaultProxy,
    repository_factory: Callable[[str], str],
    image_factory: ImageFactory,
    push: Pusher,
    two_images: list[PushedImage],
) -> None:
    """
    The destination's tag for an image names another image: the image is asked for
    by digest, copied, and the tag re-pointed at it.
    """
    destination = repository_factory("dst")
    image = two_images[1]
    push(registry2, destination, image_factory.image(), tag=image_tag(image.digest))

    code, err = _relocate(capsys, tmp_path, registry, proxy2, [image], destination)

    assert 0 == code, err
    assert image.digest == push.client(registry2).manifest_digest(
        destination, image_tag(image.digest)
    )
    heads = [r.path for r in proxy2.requests() if r.method == "HEAD"]
    assert f"/v2/{destination}/manifests/{image.digest}" in heads


def test_a_tag_is_read_back_when_the_push_answer_names_no_digest(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    proxy2: FaultProxy,
    repository_factory: Callable[[str], str],
    two_images: list[PushedImage],
) -> None:
    """
    A push answered without `Docker-Content-Digest` is checked by reading the tag back:
    a registry whose tag then names another digest fails the run, exit code 8.
    """
    destination = repository_factory("dst")
    image = two_images[1]
    tag = image_tag(image.digest)
    other = str(Digest.of(b"another image"))
    proxy2.add(Forward(drop_headers=("Docker-Content-Digest",)), method="PUT",
               path="/manifests/")
    # The plan's HEAD of the tag answers 404 (the registry's own answer); the read-back
    # after the push is the second HEAD of the tag, and it lies.
    proxy2.add(Respond(status=200, headers={"Docker-Content-Digest": other}), method="HEAD",
               path=f"/manifests/{tag}$", skip=1)

    code, err = _relocate(capsys, tmp_path, registry, proxy2, [image], destination)

    assert 8 == code, err
    assert other in err


@pytest.fixture
def eight_images(
    registry: Registry,
    repository_factory: Callable[[str], str],
    image_factory: ImageFactory,
    push: Pusher,
) -> list[PushedImage]:
    """Eight small images in one source repository: enough to list the destination's tags."""
    source = repository_factory("src")
    return [
        push(registry, source, image_factory.image(layer_sizes=(64,)), tag=f"v{n}")
        for n in range(8)
    ]


def test_many_images_into_one_repository_list_its_tags_instead_of_a_head_each(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    proxy2: FaultProxy,
    repository_factory: Callable[[str], str],
    eight_images: list[PushedImage],
) -> None:
    """
    Eight images into one repository: a first run lists its tags once and sends no
    HEAD of a tag it lacks; a re-run lists them again and HEADs each image's tag once.
    """
    destination = repository_factory("dst")

    code, err = _relocate(capsys, tmp_path, registry, proxy2, eight_images, destination)

    assert 0 == code, err
    first = proxy2.requests()
    tags = {f"/v2/{destination}/manifests/{image_tag(i.digest)}" for i in eight_images}
    assert [] == [r.path for r in first if r.method == "HEAD" and r.path in tags]
    assert [f"/v2/{destination}/tags/list"] == [r.path for r in first if "/tags/" in r.path]

    code, err = _relocate(capsys, tmp_path, registry, proxy2, eight_images, destination)

    assert 0 == code, err
    rerun = proxy2.requests()[len(first):]
    assert sorted(tags) == sorted(r.path for r in rerun if r.method == "HEAD")
    assert 1 == sum(1 for r in rerun if "/tags/list" in r.path)


def test_a_repository_whose_tags_cannot_be_listed_is_asked_tag_by_tag(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    proxy2: FaultProxy,
    repository_factory: Callable[[str], str],
    eight_images: list[PushedImage],
) -> None:
    """A tag listing refused (403) costs only itself: each tag is HEADed, all land."""
    destination = repository_factory("dst")
    proxy2.add(Respond(status=403), method="GET", path="/tags/list")

    code, err = _relocate(capsys, tmp_path, registry, proxy2, eight_images, destination)

    assert 0 == code, err
    tags = {f"/v2/{destination}/manifests/{image_tag(i.digest)}" for i in eight_images}
    heads = [r.path for r in proxy2.requests() if r.method == "HEAD" and r.path in tags]
    assert sorted(tags) == sorted(heads)
    for image in eight_images:
        verify_image_tree(registry2, destination, image.digest, hash_blobs=True)
