"""`--dry-run` and `--keep-going` against real registries."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from relocator.oci import Digest
from tests.integration.cli import insecure, relocator
from tests.support import ImageFactory, Pusher, Registry, verify_image_tree


def test_dry_run_prints_the_plan_and_writes_nothing(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    `--dry-run` lists every image and the bytes to move, skipping what the destination
    has, and sends no PUT, POST or PATCH to the destination.
    """
    images = [push(registry, repository, img) for img in image_factory.corpus(3)]
    manifest = tmp_path / "m.yml"
    manifest.write_text(yaml.safe_dump({"images": [{"image": i.reference} for i in images]}))
    lock = tmp_path / "lock"
    target = f"{registry2.host}/{repository}"
    mark = registry2.log.mark()

    result = relocator(
        capsys, "relocate", "-f", str(manifest), "-r", target, "--dry-run",
        "--lock-output", str(lock), *insecure(registry, registry2),
    )

    assert 0 == result.code, result.err
    writes = [e for e in registry2.log.requests(since=mark) if e.method in ("PUT", "POST", "PATCH")]
    assert [] == writes
    assert not lock.exists()
    assert "" == result.out, "stdout carries YAML only; the plan goes to stderr"
    lines = [line.removeprefix("relocate | ") for line in result.err.splitlines()]
    plan = lines.index(next(line for line in lines if line.startswith("plan: ")))
    assert lines[plan].startswith("plan: 3 images (0 already at the destination)")
    expected = {f"copy    {i.reference} -> {target}@{i.digest}" for i in images}
    assert expected == set(lines[plan + 1:])


def test_keep_going_finishes_the_others_and_names_the_failed_image(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    With `--keep-going` a missing source image fails alone: the other images land, the
    failure is named, the exit code is 9 and no lock is written. Without it the run
    stops at the first failure.
    """
    good = [push(registry, repository, img) for img in image_factory.corpus(2)]
    missing = f"{registry.host}/{repository}@{Digest.of(b'never pushed')}"
    manifest = tmp_path / "m.yml"
    refs = [good[0].reference, missing, good[1].reference]
    manifest.write_text(yaml.safe_dump({"images": [{"image": r} for r in refs]}))
    lock = tmp_path / "lock"
    flags = ["-f", str(manifest), "--lock-output", str(lock), *insecure(registry, registry2)]

    stopped = relocator(capsys, "relocate", "-r", f"{registry2.host}/{repository}-a", *flags)
    kept = relocator(
        capsys, "relocate", "-r", f"{registry2.host}/{repository}-b", "--keep-going", *flags
    )

    assert 8 == stopped.code
    assert 9 == kept.code
    assert 1 == len(kept.error_lines)
    failed = [line for line in kept.err.splitlines() if line.startswith("relocate | failed:")]
    assert 1 == len(failed)
    assert failed[0].startswith(f"relocate | failed: {missing}: ")
    for image in good:
        verify_image_tree(registry2, f"{repository}-b", image.digest, hash_blobs=True)
    assert not lock.exists()
    assert "" == kept.out


@pytest.mark.parametrize(
    ("scheme", "expected"),
    [("kbld", "kbld-{tag}"), ("imgpkg", "{tag}.imgpkg"), ("relocator", "{tag}.relocator")],
)
def test_destination_tags_picks_kbld_imgpkg_or_relocator_tags(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
    scheme: str,
    expected: str,
) -> None:
    """
    `--destination-tags` names the tag each image lands under, through relocate and
    through pkg/unpkg: kbld's `kbld-sha256-<hex>`, imgpkg's `sha256-<hex>.imgpkg` or
    relocator's `sha256-<hex>.relocator`, and no other.
    """
    pushed = push(registry, repository, image_factory.image())
    manifest = tmp_path / "m.yml"
    manifest.write_text(yaml.safe_dump({"images": [{"image": pushed.reference}]}))
    tarball = tmp_path / "images.tar"
    wanted = expected.format(tag=pushed.digest.tag)

    relocated = relocator(
        capsys, "relocate", "-f", str(manifest), "-r", f"{registry2.host}/{repository}/r",
        "--destination-tags", scheme, *insecure(registry, registry2),
    )
    packaged = relocator(capsys, "pkg", "-f", str(manifest), "-o", str(tarball),
                         *insecure(registry))
    unpackaged = relocator(
        capsys, "unpkg", "-f", str(manifest), "-i", str(tarball),
        "-r", f"{registry2.host}/{repository}/u", "--destination-tags", scheme,
        *insecure(registry2),
    )

    assert [0, 0, 0] == [relocated.code, packaged.code, unpackaged.code], unpackaged.err
    with registry2.client() as client:
        for path in (f"{repository}/r", f"{repository}/u"):
            assert (wanted,) == client.tags(path)
            assert pushed.digest == client.manifest_digest(path, wanted)
