"""
Reading a tarball: one pass over the headers, then every member read where it lies.

Opening indexes the archive once (`scan.py`), recognises its flavour and reads its
metadata; blobs are then streamed from their offsets with positional reads in worker
threads, any number at once, each hashed as it streams and refused at the end if it is
not the blob its name and descriptor promise. Nothing is extracted.

Flavours, recognised by their members:

- OCI image layout in a tar (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`): what
  `TarballWriter` writes by default, `skopeo copy ... oci-archive:FILE:NAME` writes
  (directory entries, members in any order) and `regctl image export` writes;
- kbld / imgpkg (`manifest.json` of PascalCase descriptors, `sha256-<hex>.tar.gz`).
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from contextlib import aclosing, asynccontextmanager
from pathlib import Path
from typing import Self

import anyio
import anyio.to_thread

from relocator.errors import (
    DigestMismatch,
    InputError,
    LimitExceeded,
    NotFound,
    TarError,
)
from relocator.oci import (
    MAX_MANIFEST_BYTES,
    Descriptor,
    Digest,
    Manifest,
    Reference,
    Repository,
    Verifier,
)
from relocator.store.tarball.catalog import Flavour, read_catalog
from relocator.store.tarball.errors import (
    MemberDigestMismatch,
    MemberSizeMismatch,
    TarballIOError,
)
from relocator.store.tarball.fileio import CHUNK, io_error, read_at
from relocator.store.tarball.images import TarballImage
from relocator.store.tarball.scan import Member, scan

log = logging.getLogger(__name__)

#: Indexes of indexes deeper than this are not real images (as in the engine's plan).
MAX_DEPTH = 8
# Blob reads (pread and hashing) run on at most two worker threads, whatever the number
# of blobs streaming: two keep both a read and a hash going, and each chunk's memory is
# then reused from the allocator arenas of those two threads. Spread over the whole
# thread pool, every chunk landed in fresh pages (unpkg peaked 16 MB higher).
_READ_THREADS = 2


class TarballReader:
    """
    A tarball opened for reading, as a source `Store`.

    Lookups are by digest, whatever repository the caller names: a tarball is
    content-addressed. Open with `await TarballReader.open(path)` or
    `async with TarballReader(path) as reader`.

    Args:
        path: The tarball (an uncompressed tar in a seekable file).
    """

    #: A tarball is an untrusted source (`relocator.store.Untrusted`): the engine pushes
    #: no manifest from it until every blob it reads has been verified.
    untrusted = True

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.name = self.path.name
        #: `"oci"` or `"kbld"`, once opened.
        self.flavour: Flavour | None = None
        self._fd = -1
        self._images: tuple[TarballImage, ...] = ()
        #: Members holding blobs (and, in OCI layouts, manifests) by digest.
        self._members: dict[Digest, Member] = {}
        #: kbld: manifests (bytes, media type) and configs embedded in manifest.json.
        self._manifests: dict[Digest, tuple[bytes, str]] = {}
        self._configs: dict[Digest, bytes] = {}
        #: Media types the metadata gives for manifests (index.json entries).
        self._media_types: dict[Digest, str] = {}
        #: Manifests read (and verified) so far.
        self._parsed: dict[Digest, Manifest] = {}
        self._threads: anyio.CapacityLimiter | None = None

    @classmethod
    async def open(cls, path: str | os.PathLike[str]) -> TarballReader:
        """
        Open and index a tarball.

        Raises:
            InputError: The file cannot be opened.
            TarError: It is not a tarball relocator reads, or it is malformed or hostile.
            LimitExceeded: A metadata member is larger than its cap.
            IntegrityError: Embedded metadata does not match its digest (kbld).
        """
        reader = cls(path)
        await reader._open()
        return reader

    async def __aenter__(self) -> Self:
        if self._fd < 0:
            await self._open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def images(self) -> tuple[TarballImage, ...]:
        """The top-level images, in the order the tarball lists them."""
        return self._images

    # -- Store -------------------------------------------------------------------------

    async def manifest_get(self, ref: Reference) -> Manifest:
        """
        A manifest by digest (any repository) or by a tag the tarball records; its bytes
        are verified against the digest.

        Raises:
            NotFound: The tarball does not hold it.
            LimitExceeded: It is larger than the manifest cap.
            IntegrityError: Its bytes do not hash to its digest.
        """
        digest = self._digest_of(ref)
        if digest is None:
            raise self._not_found(f"manifest {ref}")
        parsed = self._parsed.get(digest)
        if parsed is not None:
            return parsed
        return await anyio.to_thread.run_sync(self._manifest, digest)

    async def manifest_exists(self, ref: Reference) -> Digest | None:
        """The digest `ref` names, if the tarball holds it."""
        digest = self._digest_of(ref)
        if digest is None or (digest not in self._manifests and digest not in self._members):
            return None
        return digest

    async def manifest_put(self, ref: Reference, manifest: Manifest) -> Digest | None:
        """Refused: the tarball is open for reading."""
        raise TarError(f"{self.name} is open for reading; it cannot store {ref}")

    async def blob_exists(self, repo: Repository, desc: Descriptor) -> bool:
        """Whether the tarball holds a member (or embedded config) of the blob's size."""
        config = self._configs.get(desc.digest)
        if config is not None:
            return len(config) == desc.size
        member = self._members.get(desc.digest)
        return member is not None and member.size == desc.size

    @asynccontextmanager
    async def blob_open(
        self, repo: Repository, desc: Descriptor
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """
        Stream a blob from its member, hashing it; the last chunk is held back until the
        digest and size are checked, so no consumer ever sees all of a bad blob.

        Raises:
            NotFound: The tarball does not hold it (tarballs leave out non-distributable
                layers unless asked to include them).
            MemberSizeMismatch, MemberDigestMismatch: The member is not the blob.
        """
        config = self._configs.get(desc.digest)
        if config is not None:
            if len(config) != desc.size:
                raise MemberSizeMismatch(
                    f"{self.name}: config {desc.digest} has {len(config)} bytes, "
                    f"expected {desc.size}"
                )
            async with aclosing(_once(config)) as once:
                yield once
            return
        member = self._members.get(desc.digest)
        if member is None:
            hint = None if desc.distributable else (
                "non-distributable layers are left out of tarballs unless included on purpose"
            )
            raise NotFound(f"{self.name} has no blob {desc.digest}", host=self.name,
                           status=404, hint=hint)
        if member.size != desc.size:
            raise MemberSizeMismatch(
                f"{self.name}: member {member.name} has {member.size} bytes, "
                f"the manifest says {desc.size}"
            )
        stream = self._stream(member, desc)
        try:
            yield stream
        finally:
            await stream.aclose()

    async def blob_put(
        self, repo: Repository, desc: Descriptor, chunks: AsyncIterable[bytes]
    ) -> None:
        """Refused: the tarball is open for reading."""
        raise TarError(f"{self.name} is open for reading; it cannot store {desc.digest}")

    async def aclose(self) -> None:
        """Close the file."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    # -- internals ---------------------------------------------------------------------

    def _not_found(self, what: str) -> NotFound:
        return NotFound(f"{self.name} has no {what}", host=self.name, status=404)

    def _digest_of(self, ref: Reference) -> Digest | None:
        if ref.digest is not None:
            return ref.digest
        for image in self._images:
            if ref.tag in image.tags and (
                image.reference is None or image.reference.repo == ref.repo
            ):
                return image.digest
        return None

    def _manifest(self, digest: Digest) -> Manifest:
        """Read, verify and parse a manifest (blocking); parsed manifests are kept."""
        where = f"{self.name}:{digest}"
        embedded = self._manifests.get(digest)
        if embedded is not None:
            raw, media_type = embedded
        else:
            member = self._members.get(digest)
            if member is None:
                raise self._not_found(f"manifest {digest}")
            where = f"{self.name}:{member.name}"
            if member.size > MAX_MANIFEST_BYTES:
                raise LimitExceeded(
                    f"{where} has {member.size} bytes, more than the {MAX_MANIFEST_BYTES} "
                    "a manifest may have"
                )
            raw = self._read(member)
            media_type = self._media_types.get(digest, "")
        try:
            manifest = Manifest.parse(raw, content_type=media_type or None, digest=digest,
                                      name=where)
        except DigestMismatch as exc:
            raise MemberDigestMismatch(f"{where}: {exc}") from None
        self._parsed[digest] = manifest
        return manifest

    def _size_of(self, digest: Digest) -> int | None:
        """The stored length of a blob or manifest; None if it is not stored."""
        config = self._configs.get(digest)
        if config is not None:
            return len(config)
        embedded = self._manifests.get(digest)
        if embedded is not None:
            return len(embedded[0])
        member = self._members.get(digest)
        return member.size if member is not None else None

    def _check_complete(self) -> None:
        """
        Every manifest, index child and distributable blob the images need is stored,
        with the size its descriptor gives: an import of an incomplete tarball fails
        before it has pushed anything. Foreign layers may be absent; so may subjects.
        """
        pending: list[tuple[Descriptor, int, str]] = [
            (Descriptor(media_type=i.media_type, digest=i.digest, size=i.size), 0, "the index")
            for i in self._images
        ]
        seen: set[Digest] = set()
        while pending:
            desc, depth, parent = pending.pop()
            if desc.digest in seen:
                continue
            seen.add(desc.digest)
            size = self._size_of(desc.digest)
            if size is None:
                raise TarError(f"{self.name}: {parent} needs manifest {desc.digest}, "
                               "which is not in the tarball")
            if size != desc.size:
                raise TarError(f"{self.name}: {parent} says {desc.digest} has {desc.size} "
                               f"bytes, the tarball holds {size}")
            if depth > MAX_DEPTH:
                raise TarError(f"{self.name}: indexes nested deeper than {MAX_DEPTH} levels")
            manifest = self._manifest(desc.digest)
            pending += [(child, depth + 1, str(desc.digest)) for child in manifest.manifests]
            for blob in manifest.blobs:
                stored = self._size_of(blob.digest)
                if stored is None and blob.distributable:
                    raise TarError(f"{self.name}: {desc.digest} needs blob {blob.digest}, "
                                   "which is not in the tarball")
                if stored is not None and stored != blob.size:
                    raise TarError(f"{self.name}: {desc.digest} says blob {blob.digest} has "
                                   f"{blob.size} bytes, the tarball holds {stored}")

    def _read(self, member: Member) -> bytes:
        try:
            data = read_at(self._fd, member.offset, member.size)
        except OSError as exc:
            raise io_error(exc, f"reading {self.name}") from None
        if len(data) != member.size:
            raise TarballIOError(f"{self.name} shrank while being read ({member.name})")
        return data

    async def _stream(self, member: Member, desc: Descriptor) -> AsyncGenerator[bytes, None]:
        verifier = Verifier(desc.digest, desc.size)
        position, end = member.offset, member.offset + member.size
        pending: bytes | None = None
        if self._threads is None:
            self._threads = anyio.CapacityLimiter(_READ_THREADS)
        while position < end:
            chunk = await anyio.to_thread.run_sync(
                self._read_hashed, position, min(CHUNK, end - position), verifier,
                limiter=self._threads,
            )
            position += len(chunk)
            if pending is not None:
                yield pending
            pending = chunk
        try:
            verifier.check()
        except DigestMismatch as exc:
            raise MemberDigestMismatch(f"{self.name}: member {member.name}: {exc}") from None
        if pending is not None:
            yield pending

    def _read_hashed(self, position: int, count: int, verifier: Verifier) -> bytes:
        try:
            data = os.pread(self._fd, count, position)
        except OSError as exc:
            raise io_error(exc, f"reading {self.name}") from None
        if len(data) != count:
            raise TarballIOError(f"{self.name} shrank while being read")
        verifier.update(data)
        return data

    async def _open(self) -> None:
        try:
            await anyio.to_thread.run_sync(self._open_blocking)
        except BaseException:
            await self.aclose()
            raise

    def _open_blocking(self) -> None:
        try:
            self._fd = os.open(self.path, os.O_RDONLY)
            info = os.fstat(self._fd)
        except OSError as exc:
            raise InputError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        if not stat.S_ISREG(info.st_mode):
            raise TarError(f"{self.name} is not a regular file (a seekable file is needed)")
        listing = scan(
            lambda offset, count: read_at(self._fd, offset, count), info.st_size, where=self.name
        )
        catalog = read_catalog(listing, self._read, name=self.name)
        self.flavour = catalog.flavour
        self._images = catalog.images
        self._members = catalog.members
        self._manifests = catalog.manifests
        self._configs = catalog.configs
        self._media_types = catalog.media_types
        self._check_complete()
        log.debug("%s: %s tarball, %d members, %d images", self.name, self.flavour,
                  len(listing.files), len(self._images))

async def _once(data: bytes) -> AsyncGenerator[bytes, None]:
    yield data
