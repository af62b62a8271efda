"""
Helpers for the tarball tests: an in-memory source and a way to package images.

`memory_source` puts `tests.support` image trees into a `MemoryStore` where the jobs read
them from; its `served` counts the bytes it served, so a test can tell what a run
fetched.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path

from relocator.engine import CopyOptions, Job, Report, copy_images
from relocator.oci import Descriptor, Digest, Manifest, Reference, Repository
from relocator.store import Contents, ImageEntry
from relocator.store.tarball import Format, TarballImage, TarballWriter
from relocator.testing import MemoryStore
from tests.support import Image

#: Tarballs written by other tools, by hand (tests/data/tarballs/README.md).
FIXTURES = Path(__file__).parents[2] / "data" / "tarballs"
#: The registry the in-memory images pretend to live on.
SOURCE_REGISTRY = "registry.test"


def source_ref(image: Image, repository: str = "team/app", tag: str | None = None) -> Reference:
    """Where `image` pretends to come from: `registry.test/<repository>[:tag]@<digest>`."""
    return Reference(SOURCE_REGISTRY, repository, tag, image.digest)


def memory_source(
    images: Sequence[Image],
    *,
    jobs: Sequence[Job] | None = None,
    store: MemoryStore | None = None,
) -> MemoryStore:
    """
    A registry in memory (`store`, or a new one) holding each image in the repository its
    job reads it from: `jobs`, or `jobs_for(images)`.
    """
    store = store if store is not None else MemoryStore(SOURCE_REGISTRY)
    by_digest = {image.digest: image for image in images}
    for job in jobs if jobs is not None else jobs_for(images):
        store.add(job.source.repository, by_digest[job.digest])
    return store


def jobs_for(images: Sequence[Image], *, tags: Sequence[str] = ()) -> list[Job]:
    """One job per image, each from its own repository `team/app<i>`."""
    return [
        Job(
            source=source_ref(image, f"team/app{i}"),
            destination=Repository(SOURCE_REGISTRY, f"team/app{i}"),
            tags=tuple(tags),
        )
        for i, image in enumerate(images)
    ]


async def package(
    path: Path,
    images: Sequence[Image],
    *,
    format: Format = "oci",
    resume: bool = False,
    source: MemoryStore | None = None,
    jobs: Sequence[Job] | None = None,
    options: CopyOptions | None = None,
) -> Report:
    """Package `images` into `path` through the engine, as `relocator pkg` does."""
    jobs = jobs if jobs is not None else jobs_for(images)
    source = source or memory_source(images, jobs=jobs)
    writer = TarballWriter(path, format=format, resume=resume)
    try:
        return await copy_images(
            jobs,
            source=source,
            destination=writer,
            options=options,
        )
    finally:
        await writer.aclose()


def contents_of(images: Sequence[Image], *, repository: str = "team/app") -> Contents:
    """What the engine would hand `prepare` for `images` (everything, nothing excluded)."""
    manifests: dict[Digest, Manifest] = {}
    blobs: dict[Digest, Descriptor] = {}
    for image in images:
        for node in image.walk():
            manifests.setdefault(node.digest, Manifest.parse(node.raw, digest=node.digest))
        for blob in image.all_blobs():
            blobs.setdefault(blob.digest, blob.descriptor())
    return Contents(
        images=tuple(
            ImageEntry(reference=source_ref(image, repository), manifest=manifests[image.digest])
            for image in images
        ),
        manifests=tuple(manifests.values()),
        blobs=tuple(blobs.values()),
    )


async def chunks_of(data: bytes) -> AsyncIterator[bytes]:
    """`data` as a stream of one chunk."""
    yield data


def tar_members(path: Path) -> list[tarfile.TarInfo]:
    """The members of a tar, read with Python's `tarfile` (independent of our reader)."""
    with tarfile.open(path) as archive:
        return archive.getmembers()


def tar_member(path: Path, name: str) -> bytes:
    """One member's bytes, read with `tarfile`."""
    with tarfile.open(path) as archive:
        member = archive.extractfile(name)
        assert member is not None, name
        return member.read()


def write_tar(
    path: Path,
    members: Sequence[tuple[str, bytes | None]],
    *,
    tar_format: int = tarfile.PAX_FORMAT,
    owner: str = "",
    mtime: int = 0,
) -> Path:
    """
    Write a tar with `tarfile`: `(name, data)` pairs in order, `data=None` for a directory.
    """
    with tarfile.open(path, "w", format=tar_format) as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.mtime = mtime
            info.uname = info.gname = owner
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                archive.addfile(info)
            else:
                info.size = len(data)
                info.mode = 0o644
                archive.addfile(info, io.BytesIO(data))
    return path


def fixture_tar(directory: Path, out: Path) -> Path:
    """Tar a kbld-style fixture directory as kbld does: manifest.json first, then layers."""
    names = ["manifest.json", *sorted(p.name for p in directory.iterdir()
                                      if p.name != "manifest.json")]
    return write_tar(out, [(name, (directory / name).read_bytes()) for name in names],
                     tar_format=tarfile.USTAR_FORMAT)


def jobs_from(images: Iterable[TarballImage], destination: str = "dst.test/app") -> list[Job]:
    """Jobs importing every image of a tarball into one repository (as unpkg does)."""
    repo = Repository.parse(destination)
    return [
        Job(source=image.reference or Reference.from_repo(repo, digest=image.digest),
            destination=repo, tags=image.tags)
        for image in images
    ]


def files_in(directory: Path) -> list[Path]:
    """The files in `directory`, sorted (for "nothing else was left behind" checks)."""
    return sorted(p for p in directory.iterdir() if p.is_file())
