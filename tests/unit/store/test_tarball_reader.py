"""
`TarballReader`: what it reads back from our tarballs, skopeo's `oci-archive` and kbld's
and imgpkg's tars, and how it serves it as a source store.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from relocator.engine import copy_images
from relocator.errors import NotFound, TarError
from relocator.oci import Descriptor, Digest, Reference, Repository, mediatypes
from relocator.store.tarball import TarballReader
from relocator.testing import MemoryStore
from tests.support import Blob, Image, artifact, image, multi_platform, nested_index
from tests.unit.store.tarball_support import (
    FIXTURES,
    SOURCE_REGISTRY,
    chunks_of,
    fixture_tar,
    jobs_for,
    jobs_from,
    package,
    write_tar,
)

# Digests of the fixtures' images and layers (tests/data/tarballs/README.md).
APP = Digest.parse("sha256:9268406ada472b7c464f81544c83379098063ab86a3541472124c72a4fb8c1cd")
MULTI = Digest.parse("sha256:fe98b56bab2c80ee59431d897973a3e8a6700c708a0601aac13d1d0fe862cccf")
FOREIGN = Digest.parse("sha256:a280544d4537cdf21c30a8e66053dd789000dfe8fc1a242fa98f386270739e8d")
LAYERS = {
    Digest.parse("sha256:6af10f0c9eb3bf73a06704180f61e63096f5a35c69c5ef18d334a015cdd118e0"),
    Digest.parse("sha256:2c6f20d2cc4d1e6cc2043e80329adab4d3967f20f106acb6989294b15f20bb91"),
    Digest.parse("sha256:e7c9ab1f8e2e1735cec3b6d8ae2a4f970c190bfea99acba141ada52cab444530"),
}


@pytest.fixture
def shapes() -> list[Image]:
    """Images, both index kinds, an index of an index, an artifact with its subject."""
    return [
        image("r/oci"),
        image("r/docker", kind="docker"),
        multi_platform("r/index"),
        multi_platform("r/list", kind="docker"),
        nested_index("r/nested"),
        artifact("r/artifact", image("r/subject")),
    ]


def _sink() -> MemoryStore:
    """The destination of an import: a registry in memory (`jobs_from` names `dst.test/app`)."""
    return MemoryStore("dst.test")


def _manifests(sink: MemoryStore) -> dict[Digest, bytes]:
    """The manifests that landed, by digest: their exact bytes."""
    return {digest: manifest.raw for digest, manifest in sink.manifests("app").items()}


def _assert_landed(sink: MemoryStore, images: list[Image]) -> None:
    manifests, blobs = _manifests(sink), sink.blobs("app")
    for img in images:
        for node in img.walk():
            assert node.raw == manifests[node.digest]
        for blob in img.all_blobs():
            assert blob.read() == blobs[blob.digest]


@pytest.mark.parametrize("fmt", ["oci", "kbld"])
async def test_round_trip_keeps_every_byte(tmp_path: Path, shapes: list[Image], fmt: Any) -> None:
    """
    Images packaged into a tarball and imported from it land with every manifest and
    blob byte-identical, so every digest is unchanged. (kbld's format has no place for
    an artifact's subject but the top level, so it is listed there as an image.)
    """
    out = tmp_path / "out.tar"
    await package(out, shapes, format=fmt)
    sink = _sink()

    async with TarballReader(out) as reader:
        assert fmt == reader.flavour
        report = await copy_images(jobs_from(reader.images()), source=reader, destination=sink)

    subject = 1 if fmt == "kbld" else 0
    assert len(shapes) + subject == len(report.images)
    _assert_landed(sink, shapes)


@pytest.mark.parametrize("fmt", ["oci", "kbld"])
async def test_images_report_their_references_and_tags(tmp_path: Path, fmt: Any) -> None:
    """`images()` lists each packaged image with the reference and tags it had."""
    images = [image("r/a"), multi_platform("r/b")]
    out = tmp_path / "out.tar"
    await package(out, images, format=fmt, jobs=jobs_for(images, tags=("v1",)))

    async with TarballReader(out) as reader:
        found = {i.digest: i for i in reader.images()}

    for i, img in enumerate(images):
        entry = found[img.digest]
        assert Reference(SOURCE_REGISTRY, f"team/app{i}", None, img.digest) == entry.reference
        assert img.media_type == entry.media_type
        assert img.size == entry.size
    if fmt == "oci":
        assert {("v1",)} == {i.tags for i in found.values()}


async def test_blobs_stream_independently_from_one_file(tmp_path: Path) -> None:
    """
    Several blobs read at once, chunk by chunk in turn, each come out whole: reads are
    positional, so streams never disturb each other.
    """
    img = image("r/big", layer_sizes=(3 * 1024 * 1024 + 7, 2 * 1024 * 1024 + 1))
    out = tmp_path / "out.tar"
    await package(out, [img])
    repo = Repository(SOURCE_REGISTRY, "anything/at-all")

    async with TarballReader(out) as reader:
        opened = [reader.blob_open(repo, b.descriptor()) for b in img.blobs]
        streams = [await ctx.__aenter__() for ctx in opened]
        received: list[list[bytes]] = [[] for _ in streams]
        active = set(range(len(streams)))
        while active:
            for i in sorted(active):
                try:
                    received[i].append(await anext(streams[i]))
                except StopAsyncIteration:
                    active.discard(i)
        for ctx in opened:
            await ctx.__aexit__(None, None, None)

    assert [b.read() for b in img.blobs] == [b"".join(parts) for parts in received]


async def test_lookups_are_by_digest_in_any_repository(tmp_path: Path) -> None:
    """A tarball is content-addressed: any repository finds any manifest or blob;
    a tag finds the image packaged under it."""
    img = image("r/any")
    out = tmp_path / "out.tar"
    await package(out, [img], jobs=jobs_for([img], tags=("v1",)))
    elsewhere = Reference("other.example", "x/y", None, img.digest)

    async with TarballReader(out) as reader:
        assert img.raw == (await reader.manifest_get(elsewhere)).raw
        assert img.digest == await reader.manifest_exists(elsewhere)
        by_tag = Reference(SOURCE_REGISTRY, "team/app0", "v1")
        assert img.digest == (await reader.manifest_get(by_tag)).digest
        assert await reader.blob_exists(elsewhere.repo, img.blobs[1].descriptor())
        assert await reader.manifest_exists(Reference("a.example", "b", "nope")) is None


async def test_missing_content_is_not_found(tmp_path: Path) -> None:
    """
    Absent manifests and blobs are not found; for a non-distributable layer the error
    says tarballs leave those out.
    """
    img = image("r/missing")
    out = tmp_path / "out.tar"
    await package(out, [img])
    foreign = Blob.random("r/foreign", 10, mediatypes.DOCKER_FOREIGN_LAYER).descriptor()
    repo = Repository(SOURCE_REGISTRY, "team/app")

    async with TarballReader(out) as reader:
        with pytest.raises(NotFound, match="has no manifest"):
            await reader.manifest_get(Reference.from_repo(repo, digest=foreign.digest))
        with pytest.raises(NotFound) as caught:
            async with reader.blob_open(repo, foreign):
                pass
        assert caught.value.hint is not None
        assert "non-distributable" in caught.value.hint
        assert not await reader.blob_exists(repo, foreign)


async def test_a_reader_refuses_to_store_anything(tmp_path: Path) -> None:
    """The reader is a source only: puts are refused."""
    img = image("r/ro")
    out = tmp_path / "out.tar"
    await package(out, [img])
    ref = Reference(SOURCE_REGISTRY, "team/app", None, img.digest)

    async with TarballReader(out) as reader:
        manifest = await reader.manifest_get(ref)
        with pytest.raises(TarError, match="open for reading"):
            await reader.manifest_put(ref, manifest)
        with pytest.raises(TarError, match="open for reading"):
            await reader.blob_put(ref.repo, img.blobs[0].descriptor(), chunks_of(b""))


def _skopeo_style(path: Path, img: Image) -> Path:
    """
    What `skopeo copy docker://... oci-archive:FILE:myname` 1.9.3 writes: directory
    entries, members sorted by name (blobs first), an index.json without mediaType,
    root ownership and real timestamps.
    """
    blobs = {n.digest: n.raw for n in img.walk()}
    blobs |= {b.digest: b.read() for b in img.all_blobs()}
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": img.media_type, "digest": str(img.digest), "size": img.size,
        "annotations": {"org.opencontainers.image.ref.name": "myname"},
    }]}
    members: list[tuple[str, bytes | None]] = [("blobs", None), ("blobs/sha256", None)]
    members += [(f"blobs/sha256/{d.hex}", data) for d, data in sorted(blobs.items(), key=str)]
    members += [
        ("index.json", json.dumps(index, separators=(",", ":")).encode()),
        ("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'),
    ]
    return write_tar(path, members, owner="root", mtime=1_795_758_286)


async def test_reads_a_skopeo_oci_archive(tmp_path: Path) -> None:
    """
    skopeo's oci-archive reads: its bare ref.name is kept as the image's name (it is not
    a reference), and every digest lands unchanged.
    """
    img = multi_platform("r/skopeo")
    path = _skopeo_style(tmp_path / "skopeo.tar", img)
    sink = _sink()

    async with TarballReader(path) as reader:
        [entry] = reader.images()
        await copy_images(jobs_from(reader.images()), source=reader, destination=sink)

    assert ("myname", None, img.digest) == (entry.name, entry.reference, entry.digest)
    _assert_landed(sink, [img])


@pytest.mark.parametrize("flavour", ["kbld", "imgpkg"])
async def test_reads_kbld_and_imgpkg_tarballs(tmp_path: Path, flavour: str) -> None:
    """
    Tars in kbld's and imgpkg's format (hand-written fixtures) read: both images with
    their references, embedded manifests and configs verified, every stored layer
    importable; the foreign layer, never stored, is left out of the import.
    """
    path = fixture_tar(FIXTURES / flavour, tmp_path / f"{flavour}.tar")
    sink = _sink()

    async with TarballReader(path) as reader:
        images = {i.digest: i for i in reader.images()}
        await copy_images(jobs_from(reader.images()), source=reader, destination=sink)

    assert {APP, MULTI} == set(images)
    assert Reference("index.docker.io", "library/app", None, APP) == images[APP].reference
    assert mediatypes.DOCKER_MANIFEST_LIST == images[MULTI].media_type
    assert LAYERS == {d for d in sink.blobs("app") if d not in _configs(sink)}
    assert FOREIGN not in sink.blobs("app")
    assert 4 == len(_manifests(sink))  # the image, the index and its two images
    for digest, raw in _manifests(sink).items():
        digest.verify(raw)
    if flavour == "imgpkg":
        assert (("1.0",), "app:1.0") == (images[APP].tags, images[APP].name)
        assert {"dev.carvel.imgpkg.copy.root-bundle": ""} == images[APP].annotations
        assert ("v2",) == images[MULTI].tags


def _configs(sink: MemoryStore) -> set[Digest]:
    configs = set()
    for raw in _manifests(sink).values():
        doc = json.loads(raw)
        if "config" in doc:
            configs.add(Digest.parse(doc["config"]["digest"]))
    return configs


async def test_a_kbld_config_is_served_from_manifest_json(tmp_path: Path) -> None:
    """kbld embeds configs in manifest.json: they are served from there, whole."""
    path = fixture_tar(FIXTURES / "kbld", tmp_path / "kbld.tar")
    repo = Repository("any.example", "repo")

    async with TarballReader(path) as reader:
        manifest = await reader.manifest_get(Reference.from_repo(repo, digest=APP))
        assert manifest.config is not None
        config: Descriptor = manifest.config
        async with reader.blob_open(repo, config) as chunks:
            data = b"".join([c async for c in chunks])

    config.digest.verify(data)
    assert b'"<arg>&"' in data
