"""
`relocator resolve` and the seed's lock-file workflow against real registries:
resolve -> lock -> relocate with the lock -> `-f manifest -f lock.copied`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from relocator.oci import Digest
from tests.integration.cli import insecure, relocator
from tests.support import ImageFactory, PushedImage, Pusher, Registry

SEED_MANIFEST = "images:\n- image: {registry}/library/nginx\n- image: {registry}/library/haproxy\n"


@pytest.fixture
def seed_images(
    registry: Registry, image_factory: ImageFactory, push: Pusher
) -> dict[str, PushedImage]:
    """
    The seed's two images in a test registry: `library/nginx:latest` (a multi-platform
    index, as on Docker Hub) and `library/haproxy:latest`, under a fresh name prefix.
    """
    prefix = f"seed{Digest.of(image_factory.seed().encode()).short}"
    return {
        "nginx": push(registry, f"{prefix}/library/nginx", image_factory.index(), tag="latest"),
        "haproxy": push(registry, f"{prefix}/library/haproxy", image_factory.image(),
                        tag="latest"),
    }


def images_annotation(document: str) -> list[dict[str, Any]]:
    """The parsed `kbld.k14s.io/images` annotation of a printed document."""
    notes = yaml.safe_load(document)["metadata"]["annotations"]
    return list(yaml.safe_load(notes["kbld.k14s.io/images"]))


def _manifest(tmp_path: Path, images: dict[str, PushedImage]) -> Path:
    path = tmp_path / "manifest"
    path.write_text(
        "images:\n"
        + "".join(f"- image: {i.host}/{i.repository}\n" for i in images.values())
    )
    return path


def test_seed_workflow_with_lock_file(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    repository: str,
    seed_images: dict[str, PushedImage],
) -> None:
    """
    The seed's "With lock file" sequence: each step prints the shape the seed shows, and
    the last step rewrites the manifest without contacting any registry.
    """
    manifest = _manifest(tmp_path, seed_images)
    lock, copied = tmp_path / "manifest.lock", tmp_path / "manifest.lock.copied"
    nginx, haproxy = seed_images["nginx"], seed_images["haproxy"]
    nginx_value, haproxy_value = (f"{i.host}/{i.repository}" for i in (nginx, haproxy))
    destination = f"{registry2.host}/{repository}"

    resolved = relocator(capsys, "-f", str(manifest), "--lock-output", str(lock),
                         *insecure(registry))
    relocated = relocator(capsys, "relocate", "-f", str(lock), "--repository", destination,
                          "--lock-output", str(copied), *insecure(registry, registry2))
    mark1, mark2 = registry.log.mark(), registry2.log.mark()
    final = relocator(capsys, "-f", str(manifest), "-f", str(copied))

    assert (0, 0, 0) == (resolved.code, relocated.code, final.code), resolved.err + relocated.err
    assert [
        f"resolve | final: {haproxy_value} -> {haproxy_value}@{haproxy.digest}",
        f"resolve | final: {nginx_value} -> {nginx_value}@{nginx.digest}",
    ] == resolved.err.splitlines()
    assert [
        {"image": f"{nginx_value}@{nginx.digest}"}, {"image": f"{haproxy_value}@{haproxy.digest}"}
    ] == yaml.safe_load(resolved.out)["images"]
    # kbld's annotation: each final URL with the tag it was resolved from, sorted by URL.
    assert sorted(
        ({"origins": [{"resolved": {"tag": "latest", "url": value}}], "url": f"{value}@{i.digest}"}
         for value, i in ((nginx_value, nginx), (haproxy_value, haproxy))),
        key=lambda entry: str(entry["url"]),
    ) == images_annotation(resolved.out)
    expected_lock = (
        "apiVersion: kbld.k14s.io/v1alpha1\n"
        "kind: Config\n"
        "minimumRequiredVersion: 0.21.0\n"
        "overrides:\n"
        f"- image: {haproxy_value}\n"
        f"  newImage: {haproxy_value}@{haproxy.digest}\n"
        "  preresolved: true\n"
        f"- image: {nginx_value}\n"
        f"  newImage: {nginx_value}@{nginx.digest}\n"
        "  preresolved: true\n"
    )
    assert expected_lock == lock.read_text()
    assert "relocate | exporting 2 images..." in relocated.err.splitlines()
    assert "" == relocated.out
    copied_overrides = {
        o["image"]: o["newImage"] for o in yaml.safe_load(copied.read_text())["overrides"]
    }
    assert {
        haproxy_value: f"{destination}@{haproxy.digest}",
        f"{haproxy_value}@{haproxy.digest}": f"{destination}@{haproxy.digest}",
        nginx_value: f"{destination}@{nginx.digest}",
        f"{nginx_value}@{nginx.digest}": f"{destination}@{nginx.digest}",
    } == copied_overrides
    copied_urls = sorted(f"{destination}@{i.digest}" for i in (nginx, haproxy))
    expected_final = (
        "images:\n"
        f"- image: {destination}@{nginx.digest}\n"
        f"- image: {destination}@{haproxy.digest}\n"
        "metadata:\n"
        "  annotations:\n"
        "    kbld.k14s.io/images: |\n"
        + "".join(
            "      - origins:\n"
            "        - preresolved:\n"
            f"            url: {url}\n"
            f"        url: {url}\n"
            for url in copied_urls
        )
    )
    assert expected_final == final.out
    assert ((), ()) == (registry.log.requests(since=mark1), registry2.log.requests(since=mark2))


def test_resolve_uses_head_and_keeps_the_index_digest(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    seed_images: dict[str, PushedImage],
) -> None:
    """
    Tags are resolved with HEAD requests only (free of Docker Hub's pull quota), and an
    image index keeps its own digest when no platform is asked for.
    """
    manifest = _manifest(tmp_path, {"nginx": seed_images["nginx"]})
    mark = registry.log.mark()

    result = relocator(capsys, "resolve", "-f", str(manifest), *insecure(registry))

    assert 0 == result.code, result.err
    assert f"@{seed_images['nginx'].digest}" in result.out
    manifest_requests = [e for e in registry.log.requests(since=mark) if "/manifests/" in e.path]
    assert manifest_requests
    assert {"HEAD"} == {e.method for e in manifest_requests}


def test_platform_picks_the_child_of_an_index(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    seed_images: dict[str, PushedImage],
) -> None:
    """`--platform` resolves an index to its child for that platform, as kbld does."""
    nginx = seed_images["nginx"]
    manifest = _manifest(tmp_path, {"nginx": nginx})
    arm = next(c for c in nginx.image.children if c.platform == "linux/arm64/v8")

    result = relocator(capsys, "-f", str(manifest), "--platform", "linux/arm64",
                       *insecure(registry))
    missing = relocator(capsys, "-f", str(manifest), "--platform", "windows/amd64",
                        *insecure(registry))

    assert 0 == result.code, result.err
    value = f"{nginx.host}/{nginx.repository}"
    assert [{"image": f"{value}@{arm.digest}"}] == yaml.safe_load(result.out)["images"]
    assert [{
        "origins": [
            {"resolved": {"tag": "latest", "url": value}},
            {"platformSelected": {"architecture": "arm64", "index": f"{value}@{nginx.digest}",
                                  "os": "linux"}},
        ],
        "url": f"{value}@{arm.digest}",
    }] == images_annotation(result.out)
    assert 3 == missing.code
    assert "has no image for platform windows/amd64" in missing.error_lines[0]


def test_imgpkg_lock_round_trip(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    seed_images: dict[str, PushedImage],
) -> None:
    """
    An ImagesLock written by `--imgpkg-lock-output` is accepted as input and gives the
    same digests without contacting the registry.
    """
    manifest = _manifest(tmp_path, seed_images)
    lock = tmp_path / "images.yml"
    first = relocator(capsys, "-f", str(manifest), "--imgpkg-lock-output", str(lock),
                      *insecure(registry))
    mark = registry.log.mark()

    second = relocator(capsys, "-f", str(manifest), "-f", str(lock))

    assert (0, 0) == (first.code, second.code), first.err + second.err
    assert lock.read_text().startswith("---\napiVersion: imgpkg.carvel.dev/v1alpha1\n")
    assert yaml.safe_load(first.out)["images"] == yaml.safe_load(second.out)["images"]
    # The lock carried each image's origins; read back, they gain kbld's preresolved step.
    for before, after in zip(images_annotation(first.out), images_annotation(second.out),
                             strict=True):
        assert [*before["origins"], {"preresolved": {"url": before["url"]}}] == after["origins"]
    assert () == registry.log.requests(since=mark)


def test_missing_tag_and_unquoted_number_are_one_line_each(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, registry: Registry, repository: str
) -> None:
    """A tag that does not exist, and an `image: 1.10` YAML float, each fail in one line."""
    missing = tmp_path / "missing.yml"
    missing.write_text(f"images:\n- image: {registry.host}/{repository}:nope\n")
    number = tmp_path / "number.yml"
    number.write_text("images:\n- image: 1.10\n")

    not_found = relocator(capsys, "-f", str(missing), *insecure(registry))
    coerced = relocator(capsys, "-f", str(number))

    assert 8 == not_found.code
    assert [f"{registry.host}/{repository}:nope" in not_found.error_lines[0]] == [True]
    assert 3 == coerced.code
    assert 1 == len(coerced.error_lines)
    assert f"{number}:2:" in coerced.error_lines[0]


def test_override_tag_selection_resolves_the_highest_matching_tag(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    An override with kbld's `tagSelection` lists the repository's tags and resolves the
    highest version in the range (prereleases left out), as kbld does.
    """
    pushed = {
        tag: push(registry, repository, image_factory.image(), tag=tag)
        for tag in ("1.24.0", "1.25.1", "1.25.3", "1.26.0-rc.1", "latest")
    }
    manifest = tmp_path / "manifest.yml"
    manifest.write_text(
        "images:\n- image: app\n---\n"
        "apiVersion: kbld.k14s.io/v1alpha1\nkind: Config\noverrides:\n"
        f"- image: app\n  newImage: {registry.host}/{repository}\n"
        "  tagSelection:\n    semver:\n      constraints: '>=1.25.0 <1.27.0'\n"
    )

    result = relocator(capsys, "-f", str(manifest), *insecure(registry))

    assert 0 == result.code, result.err
    chosen = pushed["1.25.3"]
    final = f"{registry.host}/{repository}@{chosen.digest}"
    assert [{"image": final}] == yaml.safe_load(result.out)["images"]
    assert [{"origins": [{"resolved": {"tag": "1.25.3",
                                       "url": f"{registry.host}/{repository}:1.25.3"}}],
             "url": final}] == images_annotation(result.out)
    assert f"resolve | selected: app -> {registry.host}/{repository}:1.25.3" in result.err
