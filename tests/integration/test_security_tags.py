"""
Tags from hostile sources never become request paths, and tag clashes are refused
while planning (issue 12, classes 1 and 8).

A tag such as `../../../victim/app/manifests/latest` would, put in a URL unchecked,
make `/v2/mirror/app/manifests/<tag>` mean `/v2/victim/app/manifests/latest`: pushing
"a tag of mirror/app" would re-point another repository's tag.
"""

from __future__ import annotations

import json
import posixpath
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from relocator.engine import image_tag
from relocator.oci import Digest, shown
from tests.integration.cli import relocator
from tests.integration.faults_support import images_file, insecure_flags
from tests.support import FaultProxy, ImageFactory, Pusher, Registry
from tests.support.proxy import Respond
from tests.unit.store.tarball_support import write_tar

TRAVERSAL = "../../../victim/app/manifests/latest"
# Names a hostile tags/list may give, none of them a tag.
HOSTILE = [TRAVERSAL, "a?b", "c#d", "e%2Ff", "t" * 129]
# Requests that change a registry.
WRITES = ("PUT", "POST", "PATCH", "DELETE")


def landed(registry: Registry, repository: str) -> dict[str, Digest | None]:
    """The tags of `repository` other than relocator's digest tags, with their digests."""
    with registry.client() as client:
        return {
            tag: client.manifest_digest(repository, tag)
            for tag in client.tags(repository)
            if not tag.endswith(".relocator")
        }


def test_a_hostile_tag_list_cannot_re_point_another_repository(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    proxy: FaultProxy,
    fresh_registry: Registry,
    repository_factory: Callable[[str], str],
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    A source whose tags/list names `../../../victim/app/manifests/latest`, `a?b`, `c#d`,
    `e%2Ff` and a 129-character tag beside two good tags: `mirror` (rule `regex: ".*"`
    into `mirror/app`) copies the good tags, warns about each bad one by name, never
    puts one in a request to either registry, leaves `victim/app:latest` alone, exit 0.
    """
    source = repository_factory("src")
    good = {tag: push(registry, source, image_factory.image(), tag=tag) for tag in ("1.0", "2.0")}
    # The victim's latest, and an old release of it (blobs still in its repository).
    # The attacker serves the old one where the traversal lands on the source side and,
    # untagged, in the source repository: unchecked, the copy would roll victim/app's
    # latest back to it.
    old = image_factory.image()
    push(fresh_registry, "victim/app", old)
    victim = push(fresh_registry, "victim/app", image_factory.image(), tag="latest")
    planted = posixpath.normpath(f"/v2/{source}/manifests/{TRAVERSAL}")
    push(registry, planted.removeprefix("/v2/").removesuffix("/manifests/latest"), old,
         tag="latest")
    push(registry, source, old)
    listing = {"name": source, "tags": ["1.0", *HOSTILE, "2.0"]}
    proxy.add(Respond(body=json.dumps(listing).encode(),
                      headers={"Content-Type": "application/json"}),
              method="GET", path=f"/v2/{source}/tags/list")
    config = tmp_path / "mirror.yml"
    config.write_text(
        "apiVersion: relocator.dev/v1alpha1\nkind: Mirror\nsources:\n"
        f"- repository: {proxy.host}/{source}\n"
        "  tags: [{regex: '.*'}]\n"
        f"  destination: {fresh_registry.host}/mirror/app\n"
    )
    mark = fresh_registry.log.mark()

    result = relocator(capsys, "mirror", "-c", str(config),
                       *insecure_flags(proxy.host, fresh_registry.host))

    sent = [entry.path for entry in fresh_registry.log.requests(since=mark)]
    assert 0 == result.code, result.err
    assert {"latest": victim.digest} == landed(fresh_registry, "victim/app")
    assert {tag: p.digest for tag, p in good.items()} == landed(fresh_registry, "mirror/app")
    warned = [line.split("skipped ", 1)[1].split(" listed by")[0]
              for line in result.err.splitlines() if "not a valid tag" in line]
    assert [shown(tag) for tag in HOSTILE] == warned
    # Every manifest path either registry saw names a good tag, relocator's digest tag
    # or a digest: no hostile tag, escaped or not, was ever sent.
    allowed = {*good, *(image_tag(g.digest) for g in good.values())}
    asked = [*sent, *(r.path for r in proxy.requests())]
    assert [] == [
        path for path in asked
        if "/manifests/" in path
        and not (path.startswith((f"/v2/{source}/", "/v2/mirror/app/"))
                 and (path.rsplit("/", 1)[-1] in allowed
                      or path.rsplit("/", 1)[-1].startswith("sha256:")))
    ]


def _crafted(tarball: Path, out: Path, tag: str, *, kbld: bool) -> Path:
    """`tarball` with `tag` added to the tags it records for its image."""
    with tarfile.open(tarball) as archive:
        members = [(m.name, archive.extractfile(m).read() if m.isfile() else None)  # type: ignore[union-attr]
                   for m in archive.getmembers()]
    rewritten = []
    for name, data in members:
        if data is not None and name == ("manifest.json" if kbld else "index.json"):
            doc = json.loads(data)
            if kbld:
                doc[0]["Image"]["Tag"] = tag
            else:
                notes = doc["manifests"][0]["annotations"]
                notes["dev.relocator.tags"] += f",{tag}"
            data = json.dumps(doc).encode()
        rewritten.append((name, data))
    return write_tar(out, rewritten)


@pytest.mark.parametrize("fmt", ["oci", "kbld"])
def test_unpkg_refuses_a_tarball_recording_a_hostile_tag(
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
    `unpkg --preserve-tags` of a tarball (ours or kbld's format) whose recorded tag is
    `../../../victim/app/manifests/latest`: exit 3, one line naming the tag, nothing
    sent to the destination registry.
    """
    image = push(registry, repository, image_factory.image(), tag="1.0")
    inputs = images_file(tmp_path / "images.yml", [f"{image.tagged_reference}@{image.digest}"])
    packaged = tmp_path / "packaged.tar"
    packed = relocator(capsys, "pkg", "-f", str(inputs), "-o", str(packaged), "--format", fmt,
                       *insecure_flags(registry.host))
    assert 0 == packed.code, packed.err
    crafted = _crafted(packaged, tmp_path / "crafted.tar", TRAVERSAL, kbld=fmt == "kbld")
    mark = fresh_registry.log.mark()

    result = relocator(capsys, "unpkg", "-f", str(inputs), "-i", str(crafted), "--repository",
                       f"{fresh_registry.host}/mirror/app", "--preserve-tags",
                       *insecure_flags(fresh_registry.host))

    assert 3 == result.code
    assert 1 == len(result.error_lines), result.err
    assert "'../../../victim/app/manifests/latest' is recorded as a tag" in result.error_lines[0]
    assert [] == list(fresh_registry.log.requests(since=mark))


def test_preserve_tags_refuses_two_images_for_one_tag_before_pushing_anything(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    fresh_registry: Registry,
    repository_factory: Callable[[str], str],
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    `relocate --preserve-tags` of two different images both tagged `1.0` into one
    repository: refused while planning, exit 3, one line naming `repo:1.0` and both
    sources; the destination registry sees no write.
    """
    first, second = (push(registry, repository_factory(name), image_factory.image(), tag="1.0")
                     for name in ("a/app", "b/app"))
    inputs = images_file(tmp_path / "images.yml",
                         [f"{p.tagged_reference}@{p.digest}" for p in (first, second)])
    mark = fresh_registry.log.mark()

    result = relocator(capsys, "relocate", "-f", str(inputs), "--repository",
                       f"{fresh_registry.host}/one/app", "--preserve-tags",
                       *insecure_flags(registry.host, fresh_registry.host))

    assert 3 == result.code
    expected = (
        f"relocator: error: {fresh_registry.host}/one/app:1.0 would be both "
        f"{first.reference} and {second.reference} (hint: give them different destination "
        "repositories, or leave the tag out for one of them)"
    )
    assert [expected] == result.error_lines
    assert [] == [e for e in fresh_registry.log.requests(since=mark) if e.method in WRITES]


def test_a_repository_template_mapping_two_images_to_one_tag_is_refused(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    fresh_registry: Registry,
    repository_factory: Callable[[str], str],
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    `--repository-template {name}` maps `a/app:1.0` and `b/app:1.0` (different images)
    to one `app:1.0`: exit 3 before any write.
    """
    first, second = (push(registry, repository_factory(name), image_factory.image(), tag="1.0")
                     for name in ("a/app", "b/app"))
    inputs = images_file(tmp_path / "images.yml",
                         [f"{p.tagged_reference}@{p.digest}" for p in (first, second)])
    mark = fresh_registry.log.mark()

    result = relocator(capsys, "relocate", "-f", str(inputs), "--repository-template",
                       f"{fresh_registry.host}/{{name}}", "--preserve-tags",
                       *insecure_flags(registry.host, fresh_registry.host))

    assert 3 == result.code
    assert result.error_lines[0].startswith(
        f"relocator: error: {fresh_registry.host}/app:1.0 would be both"
    ), result.err
    assert [] == [e for e in fresh_registry.log.requests(since=mark) if e.method in WRITES]


def test_a_lock_naming_a_hostile_tag_is_refused_with_preserve_tags(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    fresh_registry: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    A kbld lock whose override `image` (matched as written, never parsed) carries the
    tag `v1?x#y`: `relocate --preserve-tags` exits 3 with one line naming it, and sends
    nothing to the destination.
    """
    image = push(registry, repository, image_factory.image(), tag="1.0")
    lock = tmp_path / "lock.yml"
    lock.write_text(
        "apiVersion: kbld.k14s.io/v1alpha1\nkind: Config\noverrides:\n"
        "- image: app:v1?x#y\n"
        f"  newImage: {image.reference}\n"
        "  preresolved: true\n"
    )
    mark = fresh_registry.log.mark()

    result = relocator(capsys, "relocate", "-f", str(lock), "--repository",
                       f"{fresh_registry.host}/mirror/app", "--preserve-tags",
                       *insecure_flags(registry.host, fresh_registry.host))

    assert 3 == result.code
    assert 1 == len(result.error_lines), result.err
    assert "image 'app:v1?x#y': 'v1?x#y' is not a valid tag" in result.error_lines[0]
    assert [] == list(fresh_registry.log.requests(since=mark))


def test_tag_selection_skips_listed_names_that_are_not_tags(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    proxy: FaultProxy,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    `resolve` with kbld's `tagSelection`: a listed `9.9.9+evil` (a version, but not a
    tag) is skipped with a warning naming it, never asked for; the highest real tag in
    the range is chosen.
    """
    chosen = push(registry, repository, image_factory.image(), tag="1.2.0")
    push(registry, repository, image_factory.image(), tag="1.1.0")
    listing = {"name": repository, "tags": ["1.1.0", "9.9.9+evil", "1.2.0"]}
    proxy.add(Respond(body=json.dumps(listing).encode(),
                      headers={"Content-Type": "application/json"}),
              method="GET", path=f"/v2/{repository}/tags/list")
    manifest = tmp_path / "manifest.yml"
    manifest.write_text(
        "images:\n- image: app\n---\n"
        "apiVersion: kbld.k14s.io/v1alpha1\nkind: Config\noverrides:\n"
        f"- image: app\n  newImage: {proxy.host}/{repository}\n"
        "  tagSelection:\n    semver:\n      constraints: '>=1.0.0'\n"
    )

    result = relocator(capsys, "resolve", "-f", str(manifest), *insecure_flags(proxy.host))

    assert 0 == result.code, result.err
    assert f"app -> {proxy.host}/{repository}@{chosen.digest}" in result.err
    assert (f"warning: skipped '9.9.9+evil' listed by {proxy.host}/{repository}: "
            "not a valid tag") in result.err
    assert [] == [r.path for r in proxy.requests() if "evil" in r.path]
