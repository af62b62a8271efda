"""
`--include-referrers` against real registries: OCI 1.1 referrers (docker-registry 2.8.2
has no referrers API, so the `sha256-<hex>` tag scheme; a fault proxy stands in for a
registry that has the API) and cosign's `sha256-<hex>.sig` tags, through `relocate`,
`pkg`/`unpkg` and `mirror`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from relocator.engine import image_tag
from relocator.oci import Digest, mediatypes
from tests.integration.cli import Result, insecure, relocator
from tests.support import (
    FaultProxy,
    Image,
    ImageFactory,
    PushedImage,
    Pusher,
    Registry,
    Respond,
    verify_image_tree,
)


def listing(image: Image) -> dict[str, Any]:
    """How a referrers list names `image` (OCI distribution spec 1.1)."""
    doc = json.loads(image.raw)
    entry: dict[str, Any] = {
        "mediaType": image.media_type,
        "digest": str(image.digest),
        "size": image.size,
        "artifactType": doc.get("artifactType") or doc["config"]["mediaType"],
    }
    if doc.get("annotations"):
        entry["annotations"] = doc["annotations"]
    return entry


def referrers_index(*referrers: Image) -> bytes:
    """An index listing `referrers`, as the tag scheme and the referrers API serve it."""
    doc = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_INDEX,
        "manifests": [listing(r) for r in referrers],
    }
    return json.dumps(doc).encode()


def fallback_entries(registry: Registry, repository: str, subject: Digest) -> list[Any]:
    """The entries of the index tagged `sha256-<hex>` of `subject` in `repository`."""
    with registry.client() as client:
        body = client.get_manifest(repository, subject.tag).body
    entries: list[Any] = json.loads(body)["manifests"]
    return entries


@dataclass(frozen=True, slots=True)
class Signed:
    """An image at the source with an OCI 1.1 artifact and a cosign-style signature."""

    image: PushedImage
    #: The artifact about the image, listed in the source's `sha256-<hex>` index.
    artifact: Image
    #: The "signature" image, tagged `sha256-<hex>.sig`.
    signature: Image
    manifest: Path

    @property
    def sig_tag(self) -> str:
        return f"{self.image.digest.tag}.sig"


@pytest.fixture
def signed(
    tmp_path: Path, registry: Registry, repository: str, image_factory: ImageFactory,
    push: Pusher,
) -> Signed:
    """The source: image, artifact + its fallback index, signature under its cosign tag."""
    pushed = push(registry, repository, image_factory.image(layer_sizes=(1024,)), tag="1.0")
    artifact = image_factory.artifact(subject=pushed.image)
    signature = image_factory.image(layer_sizes=(128,))
    push(registry, repository, artifact)
    push(registry, repository, signature, tag=f"{pushed.digest.tag}.sig")
    push.client(registry).put_manifest(
        repository, pushed.digest.tag, referrers_index(artifact), mediatypes.OCI_INDEX
    )
    manifest = tmp_path / "images.yml"
    manifest.write_text(yaml.safe_dump({"images": [{"image": pushed.reference}]}))
    return Signed(pushed, artifact, signature, manifest)


def relocate(
    capsys: pytest.CaptureFixture[str], manifest: Path, destination: str,
    *registries: Registry, flags: Sequence[str] = ("--include-referrers",),
) -> Result:
    return relocator(capsys, "relocate", "-f", str(manifest), "-r", destination, *flags,
                     *insecure(*registries))


def test_relocate_include_referrers_lands_what_is_attached_and_a_rerun_moves_nothing(
    capsys: pytest.CaptureFixture[str], registry: Registry, registry2: Registry,
    repository: str, signed: Signed,
) -> None:
    """
    The dry run lists the artifact and the signature as images; the copy lands them by
    digest, verified, with the signature under its `.sig` tag and a fallback index at
    `sha256-<hex>` listing the artifact as the source's did (docker-registry has no
    referrers API). The YAML names only the image. A second run writes nothing.
    """
    destination = f"{registry2.host}/{repository}"
    dry = relocate(capsys, signed.manifest, destination, registry, registry2,
                   flags=("--include-referrers", "--dry-run"))
    copied = relocate(capsys, signed.manifest, destination, registry, registry2)
    mark = registry2.log.mark()
    again = relocate(capsys, signed.manifest, destination, registry, registry2)

    assert (0, 0, 0) == (dry.code, copied.code, again.code), dry.err + copied.err + again.err
    image = signed.image
    planned = {line.removeprefix("relocate | ").split(" -> ")[0]
               for line in dry.err.splitlines() if line.startswith("relocate | copy ")}
    expected_plan = {
        f"copy    {registry.host}/{repository}@{d}"
        for d in (image.digest, signed.artifact.digest, signed.signature.digest)
    }
    assert expected_plan == planned
    assert {"images": [{"image": f"{destination}@{image.digest}"}]} == yaml.safe_load(copied.out)
    for root, expected in ((image.digest, image.image), (signed.artifact.digest, signed.artifact),
                           (signed.signature.digest, signed.signature)):
        verify_image_tree(registry2, repository, root, hash_blobs=True, expected=expected)
    with registry2.client() as client:
        assert signed.signature.digest == client.manifest_digest(repository, signed.sig_tag)
        assert (sorted([image_tag(image.digest), image.digest.tag, signed.sig_tag])
                == list(client.tags(repository)))
    assert [listing(signed.artifact)] == fallback_entries(registry2, repository, image.digest)
    writes = [e for e in registry2.log.requests(since=mark) if e.method not in ("GET", "HEAD")]
    assert [] == writes


def test_without_the_flag_nothing_attached_lands(
    capsys: pytest.CaptureFixture[str], registry: Registry, registry2: Registry,
    repository: str, signed: Signed,
) -> None:
    """Without `--include-referrers` only the image and relocator's tag land."""
    result = relocate(capsys, signed.manifest, f"{registry2.host}/{repository}",
                      registry, registry2, flags=())

    assert 0 == result.code, result.err
    with registry2.client() as client:
        assert (image_tag(signed.image.digest),) == client.tags(repository)
        assert None is client.manifest_digest(repository, signed.artifact.digest)
        assert None is client.manifest_digest(repository, signed.signature.digest)


def test_pkg_and_unpkg_carry_what_is_attached(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, registry: Registry,
    registry2: Registry, repository: str, signed: Signed,
) -> None:
    """
    `pkg --include-referrers` packages the artifact, the signature and the referrers
    index; `unpkg` (no `--preserve-tags`, no access to the source) lands the artifact
    and signature by digest, re-applies the `.sig` tag and merges the index: the same
    result as a direct copy, and the image alone keeps relocator's tag.
    """
    tarball = tmp_path / "images.tar"
    packaged = relocator(capsys, "pkg", "-f", str(signed.manifest), "-o", str(tarball),
                         "--include-referrers", *insecure(registry))
    mark = registry.log.mark()
    imported = relocator(capsys, "unpkg", "-f", str(signed.manifest), "-i", str(tarball),
                         "-r", f"{registry2.host}/{repository}", *insecure(registry2))

    assert (0, 0) == (packaged.code, imported.code), packaged.err + imported.err
    assert () == registry.log.requests(since=mark)
    image = signed.image
    for root in (image.digest, signed.artifact.digest, signed.signature.digest):
        verify_image_tree(registry2, repository, root, hash_blobs=True)
    with registry2.client() as client:
        assert signed.signature.digest == client.manifest_digest(repository, signed.sig_tag)
        assert (sorted([image_tag(image.digest), image.digest.tag, signed.sig_tag])
                == list(client.tags(repository)))
    assert [listing(signed.artifact)] == fallback_entries(registry2, repository, image.digest)
    assert {"images": [{"image": f"{registry2.host}/{repository}@{image.digest}"}]} == (
        yaml.safe_load(imported.out)
    )


def test_pkg_include_referrers_refuses_the_kbld_format(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The kbld format records no tags, so it cannot carry signatures: one clear error."""
    manifest = tmp_path / "m.yml"
    manifest.write_text("images: []\n")

    result = relocator(capsys, "pkg", "-f", str(manifest), "-o", str(tmp_path / "x.tar"),
                       "--format", "kbld", "--include-referrers")

    assert 3 == result.code
    assert "--include-referrers needs --format oci" in result.error_lines[0]


def test_a_destination_index_keeps_what_it_already_listed(
    capsys: pytest.CaptureFixture[str], registry: Registry, registry2: Registry,
    repository: str, image_factory: ImageFactory, push: Pusher, signed: Signed,
) -> None:
    """
    The destination's fallback index already lists another referrer of the image: after
    the copy it lists that one first, then the artifact (read, merged, written back).
    """
    other = image_factory.artifact(subject=signed.image.image, artifact_type="x/other")
    push(registry2, repository, other)
    push.client(registry2).put_manifest(
        repository, signed.image.digest.tag, referrers_index(other), mediatypes.OCI_INDEX
    )

    result = relocate(capsys, signed.manifest, f"{registry2.host}/{repository}",
                      registry, registry2)

    assert 0 == result.code, result.err
    assert [listing(other), listing(signed.artifact)] == fallback_entries(
        registry2, repository, signed.image.digest
    )


def test_a_source_with_the_referrers_api_is_asked_through_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, registry: Registry,
    registry2: Registry, repository: str, image_factory: ImageFactory, push: Pusher,
    signed: Signed,
) -> None:
    """
    Where the source answers the referrers API, its list is used and the fallback tag
    is not read: an artifact only the API lists lands (and is indexed at the
    destination, which lacks the API); the one only the tag lists does not.
    """
    image = signed.image
    listed = image_factory.artifact(subject=image.image, artifact_type="x/api-only")
    push(registry, repository, listed)
    with FaultProxy(registry.url) as proxy:
        api = proxy.add(
            Respond(body=referrers_index(listed),
                    headers={"Content-Type": mediatypes.OCI_INDEX}),
            method="GET", path=f"^/v2/{repository}/referrers/{image.digest}$",
        )
        manifest = tmp_path / "proxied.yml"
        manifest.write_text(yaml.safe_dump(
            {"images": [{"image": f"{proxy.host}/{repository}@{image.digest}"}]}
        ))
        result = relocate(capsys, manifest, f"{registry2.host}/{repository}", registry2,
                          flags=("--include-referrers", "--registry-insecure", proxy.host))
        tag_reads = proxy.requests(path=f"/manifests/{image.digest.tag}$")

    assert 0 == result.code, result.err
    assert 1 == api.applied
    assert [] == tag_reads
    verify_image_tree(registry2, repository, listed.digest, hash_blobs=True)
    with registry2.client() as client:
        assert None is client.manifest_digest(repository, signed.artifact.digest)
        assert signed.signature.digest == client.manifest_digest(repository, signed.sig_tag)
    assert [listing(listed)] == fallback_entries(registry2, repository, image.digest)


def test_mirror_include_referrers_per_source(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, registry: Registry,
    registry2: Registry, repository: str, image_factory: ImageFactory, push: Pusher,
    signed: Signed,
) -> None:
    """
    `includeReferrers: true` on a source mirrors what is attached to its images; a
    source without it mirrors its image alone.
    """
    plain = push(registry, f"{repository}/plain", image_factory.image(layer_sizes=(256,)),
                 tag="2.0")
    push(registry, f"{repository}/plain", image_factory.image(layer_sizes=(64,)),
         tag=f"{plain.digest.tag}.sig")
    config = tmp_path / "mirror.yml"
    config.write_text(yaml.safe_dump({
        "apiVersion": "relocator.dev/v1alpha1",
        "kind": "Mirror",
        "defaults": {"destination": f"{registry2.host}/mirrored/{{repository}}"},
        "sources": [
            {"repository": f"{registry.host}/{repository}", "tags": ["1.0"],
             "includeReferrers": True},
            {"repository": f"{registry.host}/{repository}/plain", "tags": ["2.0"]},
        ],
    }))

    result = relocator(capsys, "mirror", "-c", str(config), *insecure(registry, registry2))

    assert 0 == result.code, result.err
    mirrored = f"mirrored/{repository}"
    image = signed.image
    verify_image_tree(registry2, mirrored, signed.artifact.digest, hash_blobs=True)
    with registry2.client() as client:
        assert signed.signature.digest == client.manifest_digest(mirrored, signed.sig_tag)
        assert ["2.0", image_tag(plain.digest)] == sorted(client.tags(f"{mirrored}/plain"))
    assert [listing(signed.artifact)] == fallback_entries(registry2, mirrored, image.digest)


def test_what_is_attached_to_an_image_inside_an_index_lands_too(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, registry: Registry,
    registry2: Registry, repository: str, image_factory: ImageFactory, push: Pusher,
) -> None:
    """
    An attestation attached to one platform's image of an index (not to the index)
    is found and copied, and listed in that image's fallback index at the destination.
    """
    index = push(registry, repository, image_factory.index(), tag="multi")
    child = index.image.children[1]
    attestation = image_factory.artifact(subject=child, artifact_type="x/provenance")
    push(registry, repository, attestation)
    push.client(registry).put_manifest(
        repository, child.digest.tag, referrers_index(attestation), mediatypes.OCI_INDEX
    )
    manifest = tmp_path / "index.yml"
    manifest.write_text(yaml.safe_dump({"images": [{"image": index.reference}]}))

    result = relocate(capsys, manifest, f"{registry2.host}/{repository}", registry, registry2)

    assert 0 == result.code, result.err
    verify_image_tree(registry2, repository, index.digest, hash_blobs=True,
                      expected=index.image)
    verify_image_tree(registry2, repository, attestation.digest, hash_blobs=True,
                      expected=attestation)
    assert [listing(attestation)] == fallback_entries(registry2, repository, child.digest)


def test_copy_include_referrers_lands_the_image_and_what_is_attached(
    capsys: pytest.CaptureFixture[str], registry: Registry, registry2: Registry,
    repository: str, signed: Signed,
) -> None:
    """
    `copy --include-referrers` takes relocate's path for attachments too: the artifact
    and the signature land (the signature under its `.sig` tag); stdout is the image's
    digest alone.
    """
    result = relocator(
        capsys, "copy", f"{registry.host}/{repository}:1.0",
        f"{registry2.host}/{repository}:1.0", "--include-referrers",
        *insecure(registry, registry2),
    )

    assert 0 == result.code, result.err
    assert f"{signed.image.digest}\n" == result.out
    verify_image_tree(registry2, repository, signed.artifact.digest, hash_blobs=True,
                      expected=signed.artifact)
    with registry2.client() as client:
        assert signed.signature.digest == client.manifest_digest(repository, signed.sig_tag)
        assert signed.image.digest == client.manifest_digest(repository, "1.0")
