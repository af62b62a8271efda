"""
`TarballWriter`: the layout of the tarballs it writes, their determinism, and that a
failed run never damages the target.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from relocator.engine import CopyOptions, Job
from relocator.errors import DigestMismatch, NotFound, SizeMismatch, TarError
from relocator.oci import Descriptor, Digest, Manifest, Reference, Repository, mediatypes
from relocator.store import Contents, ImageEntry
from relocator.store.tarball import (
    TarballReader,
    TarballWriter,
    journal_path,
    kbldread,
    temporary_path,
)
from relocator.transport import RetryPolicy
from tests.support import (
    Blob,
    Image,
    artifact,
    image,
    index,
    multi_platform,
    nested_index,
    with_empty_layer,
)
from tests.unit.store.tarball_support import (
    SOURCE_REGISTRY,
    chunks_of,
    contents_of,
    files_in,
    memory_source,
    package,
    source_ref,
    tar_member,
    tar_members,
)

NO_RETRY = RetryPolicy(attempts=0)


@pytest.fixture
def shapes() -> list[Image]:
    """Every shape a tarball must hold whole: images, indexes of each kind, an index of an
    index, an artifact with a subject, an empty layer, shared layers."""
    shared = Blob.random("w/shared", 3000)
    return [
        image("w/oci", base_layers=(shared,)),
        image("w/docker", kind="docker", base_layers=(shared,)),
        multi_platform("w/index"),
        multi_platform("w/list", kind="docker"),
        nested_index("w/nested"),
        artifact("w/artifact", image("w/subject")),
        with_empty_layer("w/empty"),
    ]


def _expected_blob_members(images: list[Image]) -> set[str]:
    digests = {d for i in images for d in i.manifest_digests()}
    digests |= {b.digest for i in images for b in i.all_blobs()}
    return {f"blobs/sha256/{d.hex}" for d in digests}


async def test_oci_tarball_holds_every_manifest_and_blob_exactly_once(
    tmp_path: Path, shapes: list[Image]
) -> None:
    """
    The default tarball has no duplicate name and stores the bytes of every manifest,
    index child, subject, config and layer exactly once: metadata first, then each
    layer under kbld's name, the OCI directories, manifests, configs, and finally each
    layer's OCI name as a hard link to its kbld member. Every OCI name, read through
    the link, hashes to its digest.
    """
    out = tmp_path / "out.tar"

    await package(out, shapes)

    members = tar_members(out)
    names = [m.name for m in members]
    assert len(names) == len(set(names))
    assert ["oci-layout", "index.json", "manifest.json"] == names[:3]
    layers = {b.digest for i in shapes for n in i.walk() for b in n.layers}
    kbld_names = [f"sha256-{d.hex}.tar.gz" for d in sorted(layers, key=str)]
    assert kbld_names == names[3:3 + len(layers)]
    rest = members[3 + len(layers):]
    assert ["blobs", "blobs/sha256"] == [m.name for m in rest[:2]]
    assert _expected_blob_members(shapes) == {m.name for m in rest[2:]}
    for member in rest[2:]:
        data = tar_member(out, member.name)
        assert member.name.rsplit("/", 1)[1] == hashlib.sha256(data).hexdigest()
    links = {m.name: m.linkname for m in rest[2:] if m.islnk()}
    assert {f"blobs/sha256/{d.hex}": f"sha256-{d.hex}.tar.gz" for d in layers} == links
    manifests = {f"blobs/sha256/{d.hex}" for i in shapes for d in i.manifest_digests()}
    kinds = [0 if m.name in manifests else 1 if m.isfile() else 2 for m in rest[2:]]
    assert sorted(kinds) == kinds
    stored = sum(m.size for m in members if m.isfile())
    unique = {b.digest: b.size for i in shapes for b in i.all_blobs()}
    raw = {d: len(n.raw) for i in shapes for n in i.walk() for d in [n.digest]}
    metadata = sum(m.size for m in members[:3])
    assert metadata + sum(unique.values()) + sum(raw.values()) == stored
    assert {"imageLayoutVersion": "1.0.0"} == json.loads(tar_member(out, "oci-layout"))


async def test_kbld_and_imgpkg_find_their_own_format_in_the_default_tarball(
    tmp_path: Path, shapes: list[Image]
) -> None:
    """
    kbld's and imgpkg's readers take `manifest.json` as their descriptor list and open
    `sha256-<hex>.tar.gz` by exact name as a regular member: both hold in the default
    tarball, for every image, index child and layer, and what the descriptors embed is
    what the OCI layout holds.
    """
    out = tmp_path / "out.tar"

    await package(out, shapes)

    contents = kbldread.read_manifest(tar_member(out, "manifest.json"), where="manifest.json")
    regular = {m.name: m for m in tar_members(out) if m.isfile()}
    assert {i.digest for i in shapes} <= {i.digest for i in contents.images}
    for digest, desc in contents.layers.items():
        name = f"sha256-{digest.hex}.tar.gz"
        assert name in regular, name
        assert digest.hex == hashlib.sha256(tar_member(out, name)).hexdigest()
        assert desc.size == regular[name].size
    for digest, (raw, _) in contents.manifests.items():
        assert raw == tar_member(out, f"blobs/sha256/{digest.hex}")
    for digest, raw in contents.configs.items():
        assert raw == tar_member(out, f"blobs/sha256/{digest.hex}")


@pytest.mark.parametrize("fmt", ["oci", "kbld"])
async def test_the_same_contents_give_byte_identical_tarballs(
    tmp_path: Path, shapes: list[Image], fmt: Any
) -> None:
    """Two runs packaging the same images write the same bytes."""
    first, second = tmp_path / "first.tar", tmp_path / "second.tar"

    await package(first, shapes, format=fmt)
    await package(second, shapes, format=fmt)

    assert first.read_bytes() == second.read_bytes()


async def test_index_json_names_each_image_by_its_reference(tmp_path: Path) -> None:
    """
    Each image gets one index.json entry: its descriptor, annotated with the reference it
    was packaged from (for skopeo and containerd) and the tags to re-apply.
    """
    web = image("w/web")
    out = tmp_path / "out.tar"
    job = Job(
        source=Reference(SOURCE_REGISTRY, "team/web", "1.25", web.digest),
        destination=Repository(SOURCE_REGISTRY, "team/web"),
        tags=("v1",),
    )

    await package(out, [web], jobs=[job])

    name = f"registry.test/team/web:1.25@{web.digest}"
    expected = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_INDEX,
        "manifests": [
            {
                "mediaType": mediatypes.OCI_MANIFEST,
                "digest": str(web.digest),
                "size": web.size,
                "annotations": {
                    "dev.relocator.tags": "1.25,v1",
                    "io.containerd.image.name": name,
                    "org.opencontainers.image.ref.name": name,
                },
            }
        ],
    }
    assert expected == json.loads(tar_member(out, "index.json"))


async def test_docker_manifest_json_lists_the_single_platform_images(tmp_path: Path) -> None:
    """
    `docker load`'s keys in manifest.json are on the entries of the top-level images
    (OCI and Docker): their config, layers in order (by the member holding their bytes)
    and tags; an index's entry carries its linux/amd64 image's (Docker's loader fails on
    an entry without a config); artifacts, which docker cannot load, carry kbld's keys
    only.
    """
    oci, docker, listing = image("w/oci"), image("w/docker", kind="docker"), multi_platform(
        "w/index", platforms=("linux/arm64/v8", "linux/amd64")
    )
    images = [oci, docker, listing, artifact("w/artifact", image("w/s"))]
    out = tmp_path / "out.tar"

    await package(out, images, jobs=[
        Job(source=source_ref(img, f"team/app{i}"),
            destination=Repository(SOURCE_REGISTRY, f"team/app{i}"), tags=("v1",))
        for i, img in enumerate(images)
    ])

    loaded = {oci.digest: oci, docker.digest: docker, listing.digest: listing.children[1]}
    expected = {
        str(digest): {
            "Config": f"blobs/sha256/{img.blobs[0].digest.hex}",
            "RepoTags": [f"registry.test/team/app{i}:v1"],
            "Layers": [f"sha256-{layer.digest.hex}.tar.gz" for layer in img.layers],
        }
        for i, (digest, img) in enumerate(loaded.items())
    }
    entries = json.loads(tar_member(out, "manifest.json"))
    docker_keys = {
        (e["Image"]["Manifest"] if e["Image"] else e["ImageIndex"])["Digest"]: {
            k: e[k] for k in ("Config", "RepoTags", "Layers")
        }
        for e in entries if "Config" in e
    }
    assert expected == docker_keys
    assert all(("Image" in e) and ("ImageIndex" in e) for e in entries)


async def test_kbld_format_is_kbld_layout(tmp_path: Path) -> None:
    """
    `format="kbld"` writes kbld's tarball: manifest.json first (PascalCase descriptors
    embedding manifests and configs verbatim, sorted by kbld's sort key, DiffIDs from the
    configs), then one `sha256-<hex>.tar.gz` per distributable layer sorted by digest;
    the foreign layer is listed but not stored.
    """
    foreign = Blob.random("k/foreign", 300, mediatypes.DOCKER_FOREIGN_LAYER)
    windows = image("k/windows", kind="docker", base_layers=(foreign,))
    listing = multi_platform("k/list", kind="docker")
    out = tmp_path / "out.tar"

    await package(out, [windows, listing], format="kbld")

    names = [m.name for m in tar_members(out)]
    layers = sorted(
        str(layer.digest) for i in (windows, listing) for n in i.walk() for layer in n.layers
        if layer.digest != foreign.digest
    )
    assert ["manifest.json", *(f"{d.replace(':', '-')}.tar.gz" for d in sorted(set(layers)))] \
        == names
    descriptors = json.loads(tar_member(out, "manifest.json"))
    keys = [d["ImageIndex"]["Digest"] if d["ImageIndex"] else
            f"{d['Image']['Manifest']['Digest']}/{d['Image']['Config']['Digest']}"
            for d in descriptors]
    assert sorted(keys) == keys
    by_digest = {
        d["ImageIndex"]["Digest"] if d["ImageIndex"] else d["Image"]["Manifest"]["Digest"]: d
        for d in descriptors
    }
    win = by_digest[str(windows.digest)]["Image"]
    assert ["Refs", "Layers", "Config", "Manifest"] == list(win)
    assert [f"registry.test/team/app0@{windows.digest}"] == win["Refs"]
    assert windows.raw.decode() == win["Manifest"]["Raw"]
    assert windows.blobs[0].read().decode() == win["Config"]["Raw"]
    config = json.loads(windows.blobs[0].read())
    assert [
        {"MediaType": b.media_type, "Digest": str(b.digest),
         "DiffID": config["rootfs"]["diff_ids"][i], "Size": b.size}
        for i, b in enumerate(windows.layers)
    ] == win["Layers"]
    lst = by_digest[str(listing.digest)]["ImageIndex"]
    assert ["Refs", "Images", "Indexes", "MediaType", "Digest", "Raw"] == list(lst)
    assert [str(c.digest) for c in listing.children] == [
        i["Manifest"]["Digest"] for i in lst["Images"]
    ]
    assert lst["Indexes"] is None
    assert listing.raw.decode() == lst["Raw"]


async def test_a_failed_run_leaves_the_target_untouched_and_keeps_finished_blobs(
    tmp_path: Path,
) -> None:
    """
    A run that fails after some blobs landed leaves the file already at the target as it
    was, and keeps the temporary file and its journal for a resumed run.
    """
    img = image("w/fail", layer_sizes=(5000, 6000, 100))
    out = tmp_path / "out.tar"
    out.write_bytes(b"an earlier tarball")
    source = memory_source([img])
    source.faults.corrupt.add(img.layers[-1].digest)  # the smallest blob: it goes last

    with pytest.raises(DigestMismatch):
        await package(out, [img], source=source,
                      options=CopyOptions(max_blobs_in_flight=1, retry=NO_RETRY))

    assert b"an earlier tarball" == out.read_bytes()
    assert temporary_path(out).exists()
    assert journal_path(out).exists()


async def test_a_failed_run_that_finished_no_blob_leaves_nothing_behind(tmp_path: Path) -> None:
    """A run that fails before any blob is complete removes its temporary file."""
    img = image("w/fail-early", layer_sizes=(5000, 100))
    out = tmp_path / "out.tar"
    source = memory_source([img])
    source.faults.corrupt.add(img.layers[0].digest)  # the largest blob: it goes first

    with pytest.raises(DigestMismatch):
        await package(out, [img], source=source,
                      options=CopyOptions(max_blobs_in_flight=1, retry=NO_RETRY))

    assert [] == files_in(tmp_path)


async def test_a_blob_with_wrong_bytes_is_refused_and_never_counts(tmp_path: Path) -> None:
    """
    A blob whose bytes do not hash to its digest is refused while it streams, and the
    tarball cannot be committed until good bytes have replaced it.
    """
    img = image("w/bad", layer_sizes=(64,))
    layer = img.layers[0]
    writer = TarballWriter(tmp_path / "out.tar")
    await writer.prepare(contents_of([img]))
    repo = Repository(SOURCE_REGISTRY, "team/app")
    await writer.blob_put(repo, img.blobs[0].descriptor(), chunks_of(img.blobs[0].read()))

    with pytest.raises(DigestMismatch):
        await writer.blob_put(repo, layer.descriptor(), chunks_of(b"x" * layer.size))
    with pytest.raises(TarError, match="1 blobs were never written"):
        await writer.commit()
    await writer.blob_put(repo, layer.descriptor(), chunks_of(layer.read()))
    await writer.commit()
    await writer.aclose()

    assert layer.read() == tar_member(tmp_path / "out.tar", f"blobs/sha256/{layer.digest.hex}")


async def test_manifests_exist_once_put_by_digest_and_by_tag(tmp_path: Path) -> None:
    """
    The writer reports a manifest present only once it has been put (by digest, or by
    the tag it was put under); anything else is not found; blobs cannot be read back.
    """
    img = image("w/exists")
    writer = TarballWriter(tmp_path / "out.tar")
    manifest = Manifest.parse(img.raw)
    by_digest = Reference(SOURCE_REGISTRY, "team/app", None, img.digest)
    by_tag = Reference(SOURCE_REGISTRY, "team/app", "v1", None)
    await writer.prepare(contents_of([img]))

    assert await writer.manifest_exists(by_digest) is None
    await writer.manifest_put(by_tag, manifest)

    assert img.digest == await writer.manifest_exists(by_digest)
    assert img.digest == await writer.manifest_exists(by_tag)
    assert await writer.manifest_exists(Reference(SOURCE_REGISTRY, "team/app", "v2")) is None
    assert img.raw == (await writer.manifest_get(by_tag)).raw
    with pytest.raises(NotFound):
        await writer.manifest_get(Reference(SOURCE_REGISTRY, "team/app", "v2"))
    with pytest.raises(NotFound):
        async with writer.blob_open(by_digest.repo, img.blobs[0].descriptor()):
            pass
    with pytest.raises(TarError, match="not prepared"):
        await writer.manifest_put(by_tag, Manifest.parse(image("w/other").raw))
    await writer.aclose()


async def test_an_index_without_its_children_is_refused(tmp_path: Path) -> None:
    """A tarball holds whole images: an index whose child is missing cannot be prepared."""
    listing = multi_platform("w/partial")
    full = contents_of([listing])
    child = listing.children[0].digest
    partial = Contents(
        images=full.images,
        manifests=tuple(m for m in full.manifests if m.digest != child),
        blobs=full.blobs,
    )
    writer = TarballWriter(tmp_path / "out.tar")

    with pytest.raises(TarError, match=f"needs {child}"):
        await writer.prepare(partial)
    await writer.aclose()

    assert [] == files_in(tmp_path)


async def test_sha512_blobs_are_stored_under_long_names(tmp_path: Path) -> None:
    """
    A sha512 blob gets `blobs/sha512/<128 hex>` (longer than ustar allows, so a PAX
    record carries it) and reads back through the reader.
    """
    layer_bytes = b"a sha512 layer"
    layer = Descriptor(media_type=mediatypes.OCI_LAYER, digest=Digest.of(layer_bytes, "sha512"),
                       size=len(layer_bytes))
    config_bytes = b"{}"
    config = Descriptor(media_type=mediatypes.OCI_EMPTY, digest=Digest.of(config_bytes),
                        size=len(config_bytes))
    raw = json.dumps({
        "schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST,
        "config": config.to_json(), "layers": [layer.to_json()],
    }).encode()
    manifest = Manifest.parse(raw)
    ref = Reference(SOURCE_REGISTRY, "team/app", None, manifest.digest)
    out = tmp_path / "out.tar"
    writer = TarballWriter(out)
    await writer.prepare(Contents(images=(ImageEntry(reference=ref, manifest=manifest),),
                                  manifests=(manifest,), blobs=(config, layer)))
    await writer.blob_put(ref.repo, config, chunks_of(config_bytes))
    await writer.blob_put(ref.repo, layer, chunks_of(layer_bytes))
    await writer.manifest_put(ref, manifest)
    await writer.commit()
    await writer.aclose()

    assert layer_bytes == tar_member(out, f"blobs/sha512/{layer.digest.hex}")
    async with TarballReader(out) as reader, reader.blob_open(ref.repo, layer) as chunks:
        assert layer_bytes == b"".join([c async for c in chunks])


async def test_committing_removes_the_temporary_file_and_journal(
    tmp_path: Path, shapes: list[Image]
) -> None:
    """After a successful run only the tarball is left in the directory."""
    out = tmp_path / "out.tar"

    await package(out, shapes)

    assert [out] == files_in(tmp_path)


def test_an_unknown_format_is_refused(tmp_path: Path) -> None:
    """Only the OCI and kbld formats exist."""
    with pytest.raises(Exception, match="unknown tarball format 'zip'"):
        TarballWriter(tmp_path / "out.tar", format="zip")  # type: ignore[arg-type]


async def test_images_sharing_layers_store_each_layer_once(tmp_path: Path) -> None:
    """Layers shared by several images (and index children) are stored once."""
    base = (Blob.random("w/base", 4096),)
    images = [image(f"w/app{i}", base_layers=base) for i in range(3)]
    images.append(index([image("w/child", base_layers=base)]))
    out = tmp_path / "out.tar"

    await package(out, images)

    names = [m.name for m in tar_members(out)]
    assert 1 == names.count(f"blobs/sha256/{base[0].digest.hex}")


async def test_a_blob_longer_than_its_descriptor_writes_nothing_past_its_region(
    tmp_path: Path,
) -> None:
    """
    A stream that brings more bytes than the blob's size is refused before the extra
    bytes are written: the members laid out after its region stay intact.
    """
    img = image("w/long", layer_sizes=(3000, 2000))
    writer = TarballWriter(tmp_path / "out.tar")
    await writer.prepare(contents_of([img]))
    repo = Repository(SOURCE_REGISTRY, "team/app")
    first = img.layers[0]

    async def too_long() -> AsyncIterator[bytes]:
        yield first.read()
        yield b"X" * 4096  # beyond the padding: into the next member's header

    with pytest.raises(SizeMismatch):
        await writer.blob_put(repo, first.descriptor(), too_long())
    for blob in img.blobs:
        await writer.blob_put(repo, blob.descriptor(), chunks_of(blob.read()))
    await writer.commit()
    await writer.aclose()

    for blob in img.blobs:
        assert blob.read() == tar_member(tmp_path / "out.tar", f"blobs/sha256/{blob.digest.hex}")
