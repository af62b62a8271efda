"""
The engine's ordering and economy rules, on the in-memory registry.

Each test copies images between two `MemoryStore`s (or within one) through the engine's
entry point and reads the destination's operation log: blobs before the manifest that
needs them, children before their index, tags last, each blob once, mounts where the
registry allows them, nothing for what is already there, failures contained.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import pytest

from relocator.engine import CopyOptions, Job, Report, copy_images
from relocator.errors import IntegrityError, RegistryError
from relocator.oci import Digest, Manifest, Reference, Repository
from relocator.store import BlobMounter, Store, Untrusted
from relocator.store.base import Referrers
from relocator.testing import MemoryStore, Operation
from relocator.transport import RetryPolicy
from tests.support import Image, artifact, corpus, image, index, multi_platform, nested_index

SOURCE_REPO = "team/app"
TARGET = Repository("dst.test", "mirror/app")
# Retries without waiting: the rules under test do not depend on the backoff.
NO_WAIT = RetryPolicy(initial=0.0, jitter=0.0)


def seeded(*images: Image, repository: str = SOURCE_REPO) -> MemoryStore:
    """A source holding `images` in `repository`."""
    store = MemoryStore("src.test")
    for img in images:
        store.add(repository, img)
    return store


def job(img: Image, *tags: str, destination: Repository = TARGET) -> Job:
    """Copy `img` from the source repository to `destination`, tagged `tags`."""
    return Job(source=Reference("src.test", SOURCE_REPO, None, img.digest),
               destination=destination, tags=tags)


async def copy(
    source: MemoryStore,
    destination: MemoryStore,
    jobs: Sequence[Job],
    **options: object,
) -> Report:
    """Plan and move `jobs`; retries never wait."""
    settings = CopyOptions(**{"retry": NO_WAIT, **options})  # type: ignore[arg-type]
    return await copy_images(jobs, source=source, destination=destination, options=settings)


def position(log: Sequence[Operation], kind: str, target: str, repository: str) -> int:
    """Where in `log` the first `kind` of `target` into `repository` happened."""
    for i, op in enumerate(log):
        if op.kind == kind and op.target == target and op.repository == repository:
            return i
    raise AssertionError(f"no {kind} of {target} in {repository}")


def blob_landed_at(log: Sequence[Operation], digest: Digest, repository: str) -> int:
    """Where the blob landed in `repository`, by upload or mount."""
    for i, op in enumerate(log):
        if (op.kind in ("blob_put", "blob_mount") and op.target == str(digest)
                and op.repository == repository):
            return i
    raise AssertionError(f"blob {digest} never landed in {repository}")


# Image shapes: a plain image, an index, a Docker manifest list, an index of an index,
# and an artifact whose subject is copied with it.
SHAPES: dict[str, Callable[[], list[Image]]] = {
    "image": lambda: [image("rules/image")],
    "index": lambda: [multi_platform("rules/index")],
    "manifest-list": lambda: [multi_platform("rules/list", kind="docker")],
    "nested-index": lambda: [nested_index("rules/nested")],
    "artifact-and-subject": lambda: with_artifact(image("rules/subject")),
}


def with_artifact(subject: Image) -> list[Image]:
    """`subject` and an artifact about it."""
    return [subject, artifact("rules/sbom", subject)]


@pytest.mark.parametrize("shape", list(SHAPES))
async def test_blobs_land_before_their_manifest_and_children_before_their_index(
    shape: str,
) -> None:
    """
    No manifest is pushed before every blob it names has landed in its repository, no
    index before every child, no artifact before its subject.
    """
    images = SHAPES[shape]()
    source, destination = seeded(*images), MemoryStore("dst.test")

    await copy(source, destination, [job(img) for img in images])

    log = destination.log
    for img in images:
        for node in img.walk():
            pushed = position(log, "manifest_put", str(node.digest), TARGET.path)
            for blob in node.blobs:
                assert blob_landed_at(log, blob.digest, TARGET.path) < pushed
            for child in node.children:
                assert position(log, "manifest_put", str(child.digest), TARGET.path) < pushed
            if node.subject is not None:
                assert position(log, "manifest_put", str(node.subject.digest), TARGET.path) < pushed


async def test_an_images_tags_come_after_its_whole_tree() -> None:
    """
    The first tag is the push of the image itself, and comes after every child; the
    other tags follow it; all point at the image's digest.
    """
    img = multi_platform("rules/tags")
    source, destination = seeded(img), MemoryStore("dst.test")

    await copy(source, destination, [job(img, "1.0", "latest")])

    log = destination.log
    first_tag = position(log, "manifest_put", "1.0", TARGET.path)
    children = [position(log, "manifest_put", str(c.digest), TARGET.path) for c in img.children]
    assert max(children) < first_tag < position(log, "manifest_put", "latest", TARGET.path)
    assert {"1.0": img.digest, "latest": img.digest} == destination.tagged(TARGET.path)


async def test_each_blob_crosses_once_however_many_images_share_it() -> None:
    """Images sharing base layers: every unique blob is uploaded exactly once."""
    images = corpus("rules/dedup", 9, bases=2)
    source, destination = seeded(*images), MemoryStore("dst.test")

    report = await copy(source, destination, [job(img) for img in images])

    unique = {blob.digest for img in images for blob in img.all_blobs()}
    uploads = Counter(op.target for op in destination.operations("blob_put"))
    assert {str(d): 1 for d in unique} == dict(uploads)
    assert len(unique) == report.blobs_copied
    reads = Counter(op.target for op in source.operations("blob_open"))
    assert {str(d): 1 for d in unique} == dict(reads)


async def test_what_the_destination_has_is_neither_read_nor_written() -> None:
    """
    An image the destination already has costs no blob and no manifest push; a second
    run of the same copy writes nothing at all.
    """
    there, missing = corpus("rules/present", 2, bases=1)
    source = seeded(there, missing)
    destination = MemoryStore("dst.test")
    destination.add(TARGET.path, there)

    first = await copy(source, destination, [job(there), job(missing)])
    writes_after_first = len(destination.log)
    second = await copy(source, destination, [job(there), job(missing)])

    pushed = {op.target for op in destination.operations("manifest_put")}
    assert str(there.digest) not in pushed
    shared = {b.digest for b in there.all_blobs()}
    uploaded = {op.target for op in destination.operations("blob_put")}
    assert not uploaded & {str(d) for d in shared}
    assert writes_after_first == len(destination.log)
    assert (0, 0) == (second.blobs_copied, second.manifests_pushed)
    assert 1 == first.manifests_pushed


# What the destination already holds of a two-platform index before the copy: its blob
# digests and its manifests (as images).
Held = tuple[set[Digest], list[Image]]
HELD: dict[str, Callable[[Image], Held]] = {
    "nothing": lambda index: (set(), []),
    "one layer": lambda index: ({index.children[0].layers[0].digest}, []),
    "one platform's image": lambda index: (
        {b.digest for b in index.children[0].blobs}, [index.children[0]]
    ),
    "the whole index": lambda index: (
        {b.digest for b in index.all_blobs()}, list(index.walk())
    ),
}


@pytest.mark.parametrize("held", list(HELD))
async def test_only_what_the_destination_lacks_is_read_and_written(held: str) -> None:
    """
    A blob the destination repository has is neither read nor uploaded; a manifest it has
    is neither fetched from the source nor pushed, and neither are its blobs.
    """
    img = multi_platform("rules/skip")
    blobs, manifests = HELD[held](img)
    source, destination = seeded(img), MemoryStore("dst.test")
    for blob in img.all_blobs():
        if blob.digest in blobs:
            destination.add_blob(TARGET.path, blob.read())
    for node in manifests:
        destination.add_manifest(TARGET.path, node.raw, media_type=node.media_type)

    await copy(source, destination, [job(img)])

    missing_blobs = {str(b.digest) for b in img.all_blobs() if b.digest not in blobs}
    missing = {str(n.digest) for n in img.walk()} - {str(n.digest) for n in manifests}
    assert missing_blobs == {op.target for op in destination.operations("blob_put")}
    assert missing_blobs == {op.target for op in source.operations("blob_open")}
    assert missing == {op.target for op in destination.operations("manifest_put")}
    assert missing == {op.target for op in source.operations("manifest_get")}
    assert destination.has_manifest(TARGET.path, img.digest)


@pytest.mark.parametrize(
    ("decline", "expected"),
    [(False, ("blob_put", "blob_mount")), (True, ("blob_put", "blob_put"))],
    ids=["mounted", "declined-then-uploaded"],
)
async def test_a_blob_for_a_second_repository_is_mounted_or_else_uploaded(
    decline: bool, expected: tuple[str, str]
) -> None:
    """
    Two destination repositories of one registry needing the same blobs: the second
    gets them by a mount; a registry that declines the mount gets an upload instead.
    """
    img = image("rules/mount", layer_sizes=(4096,))
    other = Repository("dst.test", "mirror/other")
    source, destination = seeded(img), MemoryStore("dst.test")
    destination.faults.decline_mounts = decline

    await copy(source, destination, [job(img), job(img, destination=other)])

    for blob in img.blobs:
        kinds = tuple(
            op.kind for op in destination.log
            if op.target == str(blob.digest) and op.kind in ("blob_put", "blob_mount")
        )
        assert expected == kinds
        assert destination.has_blob(TARGET.path, blob.digest)
        assert destination.has_blob(other.path, blob.digest)


async def test_a_copy_within_one_registry_mounts_from_the_source() -> None:
    """Source and destination the same registry: every blob is mounted, none read."""
    img = image("rules/same-registry")
    store = seeded(img)
    within = Job(source=Reference(TARGET.registry, SOURCE_REPO, None, img.digest),
                 destination=TARGET)

    report = await copy(store, store, [within])

    assert [] == store.operations("blob_open")
    assert len(img.blobs) == report.blobs_mounted
    assert {TARGET.path} == {op.repository for op in store.operations("blob_mount")}


async def test_keep_going_finishes_the_others_and_names_the_failure() -> None:
    """
    One image the destination refuses: with keep-going the others land and the failure
    is reported; without it the run stops with the registry's error.
    """
    good, bad = corpus("rules/keep-going", 2, bases=1)
    source = seeded(good, bad)
    destination = MemoryStore("dst.test")
    destination.faults.refused_manifests.add(bad.digest)

    report = await copy(source, destination, [job(good), job(bad)], keep_going=True)

    assert destination.has_manifest(TARGET.path, good.digest)
    assert not destination.has_manifest(TARGET.path, bad.digest)
    assert [str(job(bad).source)] == [str(f.source) for f in report.failures]

    strict = MemoryStore("dst.test")
    strict.faults.refused_manifests.add(bad.digest)
    with pytest.raises(RegistryError):
        await copy(source, strict, [job(good), job(bad)])


@pytest.mark.parametrize(
    ("untrusted", "blobs_first", "intact_lands"),
    [(True, False, False), (False, True, False), (False, False, True)],
    ids=["untrusted-source", "blobs-first-asked", "trusted-source"],
)
async def test_blobs_first_lands_no_manifest_when_any_blob_is_bad(
    untrusted: bool, blobs_first: bool, intact_lands: bool
) -> None:
    """
    A source that declares itself untrusted (a tarball) gets blobs-first from the
    engine, whoever calls it, as does a caller asking for it: one corrupt blob leaves no
    image of the run behind, not even those whose own blobs were intact. Otherwise a
    trusted source's intact image lands.
    """
    intact = image("rules/intact", layer_sizes=(512,))
    tampered = image("rules/tampered", layer_sizes=(256 * 1024,))
    source = MemoryStore("src.test", untrusted=untrusted)
    source.add(SOURCE_REPO, intact)
    source.add(SOURCE_REPO, tampered)
    source.faults.corrupt.add(tampered.layers[-1].digest)
    destination = MemoryStore("dst.test")

    with pytest.raises(IntegrityError):
        await copy(source, destination, [job(intact), job(tampered)],
                   retry=RetryPolicy(attempts=0), blobs_first=blobs_first)

    expected = {str(intact.digest)} if intact_lands else set()
    assert expected == {op.target for op in destination.operations("manifest_put")}


async def test_a_failing_upload_is_retried_and_counted() -> None:
    """A blob whose upload fails twice (503) lands on the third try; the report counts 2."""
    img = image("rules/retry")
    flaky = img.layers[0].digest
    source, destination = seeded(img), MemoryStore("dst.test")
    destination.faults.failing_puts[flaky] = 2

    report = await copy(source, destination, [job(img)])

    assert 2 == report.retries
    assert destination.has_blob(TARGET.path, flaky)
    assert destination.has_manifest(TARGET.path, img.digest)


def test_memory_store_manifests_parse_as_relocator_reads_them() -> None:
    """The in-memory registry keeps the exact bytes of what it was seeded with."""
    img = index([image("rules/bytes/a"), image("rules/bytes/b")])
    store = seeded(img)

    for node in img.walk():
        assert store.has_manifest(SOURCE_REPO, node.digest)
    manifest = Manifest.parse(img.raw, content_type=img.media_type)
    assert img.digest == manifest.digest


def test_memory_store_has_the_capabilities_the_engine_looks_for() -> None:
    """
    MemoryStore is a `Store` (checked by mypy here) that mounts, lists referrers and can
    declare itself untrusted, so the engine takes the same paths on it as on a registry.
    """
    store: Store = MemoryStore(untrusted=True)

    assert isinstance(store, BlobMounter)
    assert isinstance(store, Referrers)
    assert isinstance(store, Untrusted)
    assert store.untrusted
