"""
An in-memory registry for engine tests and for users' own tests of code that drives
relocator.

`MemoryStore` implements the `Store` protocol with the `BlobMounter` and `Referrers`
capabilities, keeps an ordered log of every write and read and the bytes it served, and
can be told to misbehave (fail a blob a number of times, serve corrupt bytes, decline
mounts, refuse a manifest push, fail a referrers listing). It holds whole blobs in
memory, so it is for small test images only. Seed it with `add` (any image tree, such as
the test suite's image factory builds) or `add_blob` and `add_manifest` (raw bytes).

It judges relocator's own code, so it depends only on the pure data model
(`relocator.oci`) and the error hierarchy.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

import anyio
import anyio.lowlevel

from relocator.errors import NotFound, RegistryError
from relocator.oci import Descriptor, Digest, Manifest, Reference, Repository, Verifier

# Chunks a blob is served in: small, so a test blob of a few KiB streams in pieces.
_CHUNK = 4096
# The status a refused manifest push answers with (the distribution spec's "unknown
# blob"-style client error: not retried).
_REFUSED = 400


class BlobSource(Protocol):
    """A config or layer to seed a `MemoryStore` with: its digest and its bytes."""

    @property
    def digest(self) -> Digest: ...

    def read(self) -> bytes:
        """The whole blob."""
        ...


class ImageTree(Protocol):
    """
    An image to seed a `MemoryStore` with: a manifest's exact bytes, its blobs, and
    every manifest of its tree (the test suite's image factory builds such trees).
    """

    @property
    def digest(self) -> Digest: ...

    @property
    def media_type(self) -> str: ...

    @property
    def raw(self) -> bytes: ...

    @property
    def blobs(self) -> tuple[BlobSource, ...]: ...

    def walk(self) -> Iterable[ImageTree]:
        """Every manifest of the tree once, itself included."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Operation:
    """One call a `MemoryStore` served: what, in which repository, for which digest or tag."""

    #: `blob_put`, `blob_mount`, `blob_open`, `manifest_put`, `manifest_get`.
    kind: str
    repository: str
    #: The digest (blobs, manifests by digest) or tag (manifests by tag).
    target: str
    #: For `blob_mount`, the repository mounted from.
    origin: str | None = None


@dataclass(slots=True, kw_only=True)
class Faults:
    """How a `MemoryStore` misbehaves; empty by default."""

    #: Blob digest -> how many more uploads of it fail (a temporary 503).
    failing_puts: Counter[Digest] = field(default_factory=Counter)
    #: Blob digests served with their last byte flipped (same length).
    corrupt: set[Digest] = field(default_factory=set)
    #: Decline every mount (as a registry answering 202 does); the engine must upload.
    decline_mounts: bool = False
    #: Manifest digests whose push is refused with a non-temporary error.
    refused_manifests: set[Digest] = field(default_factory=set)
    #: Subject digests whose referrers cannot be listed (a 500 each time).
    failing_referrers: set[Digest] = field(default_factory=set)


class MemoryStore:
    """
    A registry in memory: repositories of blobs, manifests by digest and by tag.

    Args:
        name: The host the store pretends to be (it answers for any registry name).
        referrers_api: Whether it lists referrers as an OCI 1.1 registry does; without
            it, `referrers` reads the fallback index tagged `<alg>-<hex>`.
        untrusted: Declare the store an untrusted source, as a tarball does
            (`relocator.store.Untrusted`).
    """

    def __init__(
        self, name: str = "memory.test", *, referrers_api: bool = True, untrusted: bool = False
    ) -> None:
        self.name = name
        self.referrers_api_enabled = referrers_api
        self.untrusted = untrusted
        self.faults = Faults()
        #: Every call served, in order.
        self.log: list[Operation] = []
        #: Bytes of each blob handed to readers, so a test can tell what a run fetched.
        self.served: Counter[Digest] = Counter()
        self._blobs: dict[str, dict[Digest, bytes]] = {}
        self._manifests: dict[str, dict[Digest, Manifest]] = {}
        self._tags: dict[str, dict[str, Digest]] = {}

    # -- seeding and inspecting ---------------------------------------------------------

    def add(self, repository: str, image: ImageTree, *, tag: str | None = None) -> Reference:
        """Put `image` and everything below it into `repository`; its reference by digest."""
        for node in image.walk():
            for blob in node.blobs:
                self.add_blob(repository, blob.read())
            self.add_manifest(repository, node.raw, media_type=node.media_type)
        if tag is not None:
            self._tags.setdefault(repository, {})[tag] = image.digest
        return Reference(self.name, repository, None, image.digest)

    def add_blob(self, repository: str, data: bytes) -> Digest:
        """Put one blob into `repository` (no log entry); its digest."""
        digest = Digest.of(data)
        self._blobs.setdefault(repository, {})[digest] = data
        return digest

    def add_manifest(
        self, repository: str, raw: bytes, *, media_type: str | None = None,
        tag: str | None = None,
    ) -> Digest:
        """
        Put one manifest's exact bytes into `repository` (no log entry), without checking
        that what it references is there, so a test can also seed what a registry would
        refuse; its digest.
        """
        manifest = Manifest.parse(raw, content_type=media_type)
        self._manifests.setdefault(repository, {})[manifest.digest] = manifest
        if tag is not None:
            self._tags.setdefault(repository, {})[tag] = manifest.digest
        return manifest.digest

    def has_blob(self, repository: str, digest: Digest) -> bool:
        """Whether `repository` holds the blob."""
        return digest in self._blobs.get(repository, {})

    def has_manifest(self, repository: str, digest: Digest) -> bool:
        """Whether `repository` holds the manifest."""
        return digest in self._manifests.get(repository, {})

    def blobs(self, repository: str) -> dict[Digest, bytes]:
        """The blobs of `repository`."""
        return dict(self._blobs.get(repository, {}))

    def manifests(self, repository: str) -> dict[Digest, Manifest]:
        """The manifests of `repository`, by digest."""
        return dict(self._manifests.get(repository, {}))

    def tagged(self, repository: str) -> dict[str, Digest]:
        """The tags of `repository` and what they point at."""
        return dict(self._tags.get(repository, {}))

    def repositories(self) -> set[str]:
        """Every repository holding anything."""
        return set(self._blobs) | set(self._manifests) | set(self._tags)

    def operations(self, kind: str) -> list[Operation]:
        """The logged calls of one kind, in order."""
        return [op for op in self.log if op.kind == kind]

    # -- Store --------------------------------------------------------------------------

    async def manifest_get(self, ref: Reference) -> Manifest:
        """The manifest `ref` names (by digest or tag)."""
        digest = self._resolve(ref)
        manifest = self._manifests.get(ref.repository, {}).get(digest) if digest else None
        if manifest is None:
            raise NotFound(f"{ref}: manifest unknown", host=self.name, status=404)
        self.log.append(Operation(kind="manifest_get", repository=ref.repository,
                                  target=ref.identifier))
        return manifest

    async def manifest_exists(self, ref: Reference) -> Digest | None:
        """The digest `ref` points at, or None."""
        digest = self._resolve(ref)
        if digest is None or digest not in self._manifests.get(ref.repository, {}):
            return None
        return digest

    async def manifest_put(self, ref: Reference, manifest: Manifest) -> Digest | None:
        """
        Store `manifest` under `ref`; refused if anything it references is missing. Its
        digest, as a registry's `Docker-Content-Digest` names it.
        """
        if manifest.digest in self.faults.refused_manifests:
            raise RegistryError(f"{ref}: manifest refused", host=self.name, status=_REFUSED,
                                codes=("MANIFEST_INVALID",))
        repo = ref.repository
        for desc in manifest.blobs:
            if desc.distributable and not self.has_blob(repo, desc.digest):
                raise RegistryError(f"{ref}: blob {desc.digest} unknown", host=self.name,
                                    status=_REFUSED, codes=("MANIFEST_BLOB_UNKNOWN",))
        for desc in manifest.manifests:
            if not self.has_manifest(repo, desc.digest):
                raise RegistryError(f"{ref}: manifest {desc.digest} unknown", host=self.name,
                                    status=_REFUSED, codes=("MANIFEST_BLOB_UNKNOWN",))
        self._manifests.setdefault(repo, {})[manifest.digest] = manifest
        if ref.tag is not None:
            self._tags.setdefault(repo, {})[ref.tag] = manifest.digest
        self.log.append(Operation(kind="manifest_put", repository=repo,
                                  target=ref.tag or str(manifest.digest)))
        return manifest.digest

    async def blob_exists(self, repo: Repository, desc: Descriptor) -> bool:
        """Whether `repo` has the blob."""
        return self.has_blob(repo.path, desc.digest)

    def blob_open(
        self, repo: Repository, desc: Descriptor
    ) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """The blob's bytes in small chunks (corrupted when `faults.corrupt` says so)."""
        return self._open(repo, desc)

    @asynccontextmanager
    async def _open(self, repo: Repository, desc: Descriptor) -> AsyncIterator[AsyncIterator[bytes]]:
        data = self._blobs.get(repo.path, {}).get(desc.digest)
        if data is None:
            raise NotFound(f"{repo}: blob {desc.digest} unknown", host=self.name, status=404)
        self.log.append(Operation(kind="blob_open", repository=repo.path,
                                  target=str(desc.digest)))
        if desc.digest in self.faults.corrupt and data:
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        yield self._chunks(desc.digest, data)

    async def _chunks(self, digest: Digest, data: bytes) -> AsyncIterator[bytes]:
        for start in range(0, len(data), _CHUNK):
            # A real stream waits for the network between chunks; so does this one, so
            # that concurrent transfers interleave as they would against a registry.
            await anyio.lowlevel.checkpoint()
            chunk = data[start:start + _CHUNK]
            self.served[digest] += len(chunk)
            yield chunk

    async def blob_put(
        self, repo: Repository, desc: Descriptor, chunks: AsyncIterable[bytes]
    ) -> None:
        """Store a blob after checking its size and digest; nothing is kept on a mismatch."""
        if self.faults.failing_puts[desc.digest] > 0:
            self.faults.failing_puts[desc.digest] -= 1
            raise RegistryError(f"{repo}: upload of {desc.digest} failed", host=self.name,
                                status=503)
        verifier = Verifier(desc.digest, desc.size)
        parts = []
        async for chunk in chunks:
            verifier.update(chunk)
            parts.append(bytes(chunk))
        verifier.check()
        self._blobs.setdefault(repo.path, {})[desc.digest] = b"".join(parts)
        self.log.append(Operation(kind="blob_put", repository=repo.path,
                                  target=str(desc.digest)))

    async def aclose(self) -> None:
        """Nothing to release."""

    # -- BlobMounter --------------------------------------------------------------------

    async def blob_mount(self, src: Repository, dst: Repository, desc: Descriptor) -> bool:
        """Mount a blob `src` has into `dst`; False when declined or `src` lacks it."""
        data = self._blobs.get(src.path, {}).get(desc.digest)
        if self.faults.decline_mounts or data is None:
            return False
        self._blobs.setdefault(dst.path, {})[desc.digest] = data
        self.log.append(Operation(kind="blob_mount", repository=dst.path,
                                  target=str(desc.digest), origin=src.path))
        return True

    # -- Referrers ----------------------------------------------------------------------

    async def referrers_api(self, repo: Repository, digest: Digest) -> list[Descriptor] | None:
        """Manifests of `repo` whose subject is `digest`; None without the API."""
        self._listing_fault(repo, digest)
        if not self.referrers_api_enabled:
            return None
        return [
            _listing(manifest)
            for manifest in self._manifests.get(repo.path, {}).values()
            if manifest.subject is not None and manifest.subject.digest == digest
        ]

    async def referrers(self, repo: Repository, digest: Digest) -> list[Descriptor]:
        """The API's list, or the entries of the fallback index `<alg>-<hex>`."""
        self._listing_fault(repo, digest)
        listed = await self.referrers_api(repo, digest)
        if listed is not None:
            return listed
        fallback = self._tags.get(repo.path, {}).get(f"{digest.algorithm}-{digest.hex}")
        if fallback is None:
            return []
        return list(self._manifests[repo.path][fallback].manifests)

    async def attached_tags(self, repo: Repository, digest: Digest) -> dict[str, Digest]:
        """cosign's `.sig`, `.att`, `.sbom` tags for `digest` that exist."""
        tags = self._tags.get(repo.path, {})
        wanted = (f"{digest.tag}.{suffix}" for suffix in ("sig", "att", "sbom"))
        return {tag: tags[tag] for tag in wanted if tag in tags}

    def _listing_fault(self, repo: Repository, digest: Digest) -> None:
        if digest in self.faults.failing_referrers:
            raise RegistryError(f"{repo}: listing the referrers of {digest} failed",
                                host=self.name, status=500)

    def _resolve(self, ref: Reference) -> Digest | None:
        if ref.digest is not None:
            return ref.digest
        if ref.tag is None:
            return None
        return self._tags.get(ref.repository, {}).get(ref.tag)


def _listing(manifest: Manifest) -> Descriptor:
    """How the referrers API lists `manifest`: its descriptor with its artifact type."""
    desc = manifest.descriptor()
    artifact_type = manifest.artifact_type or (
        manifest.config.media_type if manifest.config is not None else None
    )
    return Descriptor(media_type=desc.media_type, digest=desc.digest, size=desc.size,
                      annotations=dict(manifest.annotations), artifact_type=artifact_type)
