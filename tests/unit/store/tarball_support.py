"""
Helpers for the tarball tests: an in-memory source store and a way to package images.

`MemoryStore` serves `tests.support` image trees the way a registry would (manifests
verified by digest, blobs streamed in 1 MiB chunks) and counts the bytes it serves, so a
test can tell what a run fetched.
"""

from __future__ import annotations

import io
import tarfile
from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from relocator.engine import CopyOptions, Job, Report, copy_images
from relocator.errors import NotFound
from relocator.oci import Descriptor, Digest, Manifest, Reference, Repository
from relocator.store import Contents, ImageEntry, VerifiedBody
from relocator.store.tarball import Format, TarballImage, TarballWriter
from tests.support import Blob, Image

#: Tarballs written by other tools, by hand (tests/data/tarballs/README.md).
FIXTURES = Path(__file__).parents[2] / "data" / "tarballs"
#: The registry the in-memory images pretend to live on.
SOURCE_REGISTRY = "registry.test"


class MemoryStore:
    """A read-only source store holding `Image` trees (any repository serves any digest)."""

    def __init__(self, images: Iterable[Image] = ()) -> None:
        self.name = "memory"
        self._manifests: dict[Digest, Image] = {}
        self._blobs: dict[Digest, Blob] = {}
        #: Bytes served per blob digest.
        self.served: Counter[Digest] = Counter()
        #: Blob digests whose bytes are served corrupted (same length, last byte flipped).
        self.corrupt: set[Digest] = set()
        for image in images:
            self.add(image)

    def add(self, image: Image) -> None:
        """Make `image` and everything below it available."""
        for node in image.walk():
            self._manifests[node.digest] = node
            for blob in node.blobs:
                self._blobs[blob.digest] = blob

    async def manifest_get(self, ref: Reference) -> Manifest:
        node = self._manifests.get(ref.digest) if ref.digest else None
        if node is None:
            raise NotFound(f"no manifest {ref}", host=self.name, status=404)
        return Manifest.parse(node.raw, content_type=node.media_type, digest=node.digest)

    async def manifest_exists(self, ref: Reference) -> Digest | None:
        return ref.digest if ref.digest in self._manifests else None

    async def manifest_put(self, ref: Reference, manifest: Manifest) -> None:
        raise NotImplementedError

    async def blob_exists(self, repo: Repository, desc: Descriptor) -> bool:
        return desc.digest in self._blobs

    @asynccontextmanager
    async def blob_open(
        self, repo: Repository, desc: Descriptor
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        blob = self._blobs.get(desc.digest)
        if blob is None:
            raise NotFound(f"no blob {desc.digest}", host=self.name, status=404)
        yield self._chunks(blob)

    async def _chunks(self, blob: Blob) -> AsyncIterator[bytes]:
        chunks = list(blob.chunks())
        if blob.digest in self.corrupt and chunks:
            last = chunks[-1]
            chunks[-1] = last[:-1] + bytes([last[-1] ^ 0xFF])
        for chunk in chunks:
            self.served[blob.digest] += len(chunk)
            yield chunk

    async def blob_put(
        self, repo: Repository, desc: Descriptor, chunks: AsyncIterable[bytes]
    ) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


def source_ref(image: Image, repository: str = "team/app", tag: str | None = None) -> Reference:
    """Where `image` pretends to come from: `registry.test/<repository>[:tag]@<digest>`."""
    return Reference(SOURCE_REGISTRY, repository, tag, image.digest)


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
    source = source or MemoryStore(images)
    writer = TarballWriter(path, format=format, resume=resume)
    try:
        return await copy_images(
            jobs if jobs is not None else jobs_for(images),
            source=source,
            destination=writer,
            options=options,
        )
    finally:
        await writer.aclose()


class SinkStore:
    """A destination store keeping what it receives (blobs verified as they stream)."""

    def __init__(self) -> None:
        self.name = "sink"
        self.manifests: dict[Digest, bytes] = {}
        self.tags: dict[tuple[Repository, str], Digest] = {}
        self.blobs: dict[Digest, bytes] = {}

    async def manifest_get(self, ref: Reference) -> Manifest:
        digest = await self.manifest_exists(ref)
        if digest is None:
            raise NotFound(f"no manifest {ref}", host=self.name, status=404)
        return Manifest.parse(self.manifests[digest], digest=digest)

    async def manifest_exists(self, ref: Reference) -> Digest | None:
        if ref.digest is not None:
            return ref.digest if ref.digest in self.manifests else None
        return self.tags.get((ref.repo, ref.tag or "latest"))

    async def manifest_put(self, ref: Reference, manifest: Manifest) -> None:
        self.manifests[manifest.digest] = manifest.raw
        if ref.tag is not None:
            self.tags[(ref.repo, ref.tag)] = manifest.digest

    async def blob_exists(self, repo: Repository, desc: Descriptor) -> bool:
        return desc.digest in self.blobs

    def blob_open(
        self, repo: Repository, desc: Descriptor
    ) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        raise NotImplementedError

    async def blob_put(
        self, repo: Repository, desc: Descriptor, chunks: AsyncIterable[bytes]
    ) -> None:
        body = VerifiedBody(desc, chunks)
        data = b"".join([chunk async for chunk in body])
        self.blobs[desc.digest] = data

    async def aclose(self) -> None:
        return None


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
