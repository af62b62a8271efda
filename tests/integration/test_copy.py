"""`relocator copy SRC DST` against real registries: one image, every digest kept."""

from __future__ import annotations

import pytest

from tests.integration.cli import insecure, relocator
from tests.support import ImageFactory, Pusher, Registry, verify_image_tree

WRITES = ("PUT", "POST", "PATCH")


def test_copy_by_tag_lands_the_image_under_the_tag_asked_and_prints_its_digest(
    capsys: pytest.CaptureFixture[str],
    registry: Registry,
    registry2: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    `copy SRC:TAG DST:TAG2` lands the image with its digest unchanged under TAG2 (and no
    other tag), and prints that digest alone on stdout; a second copy writes nothing.
    """
    pushed = push(registry, repository, image_factory.index(), tag="1.0")
    source = f"{registry.host}/{repository}:1.0"
    destination = f"{registry2.host}/{repository}:stable"

    first = relocator(capsys, "copy", source, destination, *insecure(registry, registry2))
    mark = registry2.log.mark()
    second = relocator(capsys, "copy", source, destination, *insecure(registry, registry2))

    assert (0, 0) == (first.code, second.code), first.err + second.err
    assert f"{pushed.digest}\n" == first.out
    assert f"{pushed.digest}\n" == second.out
    verify_image_tree(registry2, repository, pushed.digest, hash_blobs=True, expected=pushed.image)
    with registry2.client() as client:
        assert ("stable",) == client.tags(repository)
        assert pushed.digest == client.manifest_digest(repository, "stable")
    assert [] == [e for e in registry2.log.requests(since=mark) if e.method in WRITES]
    assert "copy | nothing to do: 1 images already present" in second.err


def test_copy_by_digest_to_a_repository_pushes_by_digest_only(
    capsys: pytest.CaptureFixture[str],
    registry: Registry,
    registry2: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """A source named by digest, a DST without tag: the image lands by digest, untagged."""
    pushed = push(registry, repository, image_factory.image())

    result = relocator(
        capsys, "copy", pushed.reference, f"{registry2.host}/{repository}",
        *insecure(registry, registry2),
    )

    assert 0 == result.code, result.err
    assert f"{pushed.digest}\n" == result.out
    verify_image_tree(registry2, repository, pushed.digest, hash_blobs=True)
    with registry2.client() as client:
        assert () == client.tags(repository)


def test_copy_with_a_platform_copies_that_platforms_image_and_prints_its_digest(
    capsys: pytest.CaptureFixture[str],
    registry: Registry,
    registry2: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """`--platform` picks the index's child (the index would change digest if trimmed)."""
    pushed = push(registry, repository, image_factory.index(), tag="multi")
    [arm] = [c for c in pushed.children if (c.image.platform or "").startswith("linux/arm64")]

    result = relocator(
        capsys, "copy", f"{registry.host}/{repository}:multi",
        f"{registry2.host}/{repository}:arm", "--platform", "linux/arm64",
        *insecure(registry, registry2),
    )

    assert 0 == result.code, result.err
    assert f"{arm.digest}\n" == result.out
    with registry2.client() as client:
        assert arm.digest == client.manifest_digest(repository, "arm")
        assert client.manifest_digest(repository, pushed.digest) is None


@pytest.mark.parametrize(
    ("destination", "message"),
    [
        ("{host}/{repo}@sha256:" + "a" * 64, "names a digest"),
        ("{host}/{repo}:not a tag", "DST"),
    ],
)
def test_a_destination_that_is_not_a_repository_or_tag_is_refused(
    capsys: pytest.CaptureFixture[str],
    registry: Registry,
    registry2: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
    destination: str,
    message: str,
) -> None:
    """One line naming DST, exit 3, nothing written."""
    pushed = push(registry, repository, image_factory.image())
    mark = registry2.log.mark()

    result = relocator(
        capsys, "copy", pushed.reference,
        destination.format(host=registry2.host, repo=repository),
        *insecure(registry, registry2),
    )

    assert 3 == result.code
    [line] = result.error_lines
    assert message in line
    assert "" == result.out
    assert [] == [e for e in registry2.log.requests(since=mark) if e.method in WRITES]
