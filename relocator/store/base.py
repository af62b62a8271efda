"""
The one storage interface: somewhere OCI content lives.

A registry, an OCI layout inside a tarball, a kbld tarball: the engine copies between
any two of them through this protocol, so registry -> registry, registry -> tar and
tar -> registry share one scheduler.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from relocator.errors import InputError, RelocatorError
from relocator.oci import Descriptor, Digest, Manifest, Reference, Repository, Verifier
from relocator.store.listings import TagListing
from relocator.transport import Hosts


class Store(Protocol):
    """
    Somewhere OCI content lives.

    Seven methods: the design's six plus `manifest_exists`, which the engine needs to
    skip whole images the destination already has without fetching them.
    """

    #: How to name this store in messages (a registry host, a file name).
    name: str

    async def manifest_get(self, ref: Reference) -> Manifest:
        """
        The manifest `ref` names; by digest, its bytes are verified against the digest.

        Raises:
            NotFound: There is no such manifest.
        """
        ...

    async def manifest_exists(self, ref: Reference) -> Digest | None:
        """The digest `ref` points at, or None if the store does not have it."""
        ...

    async def manifest_put(self, ref: Reference, manifest: Manifest) -> Digest | None:
        """
        Store `manifest` under `ref` (a tag or its own digest), as its exact bytes.

        Returns the digest the store says it stored, when its answer says (a registry's
        `Docker-Content-Digest`), else None.
        """
        ...

    async def blob_exists(self, repo: Repository, desc: Descriptor) -> bool:
        """Whether `repo` already has the blob `desc` names."""
        ...

    def blob_open(
        self, repo: Repository, desc: Descriptor
    ) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """The blob's raw bytes as a stream of chunks (not verified here: `blob_put` does)."""
        ...

    async def blob_put(
        self, repo: Repository, desc: Descriptor, chunks: AsyncIterable[bytes]
    ) -> None:
        """
        Store a blob, verifying digest and size while it streams; nothing is committed
        when they do not match.

        Raises:
            DigestMismatch, SizeMismatch: The bytes are not the blob `desc` names.
        """
        ...

    async def aclose(self) -> None:
        """Release what the store holds (connections, files)."""
        ...


@runtime_checkable
class BlobMounter(Protocol):
    """Optional: copy a blob between repositories of one registry without moving bytes."""

    async def blob_mount(self, src: Repository, dst: Repository, desc: Descriptor) -> bool:
        """Mount `desc` from `src` into `dst`; False if the registry declined."""
        ...


@runtime_checkable
class TagLister(Protocol):
    """Optional: a store that lists a repository's tags in pages."""

    async def tags(self, repo: Repository, *, pages: int | None = None) -> TagListing:
        """
        Every tag of `repo`, in at most `pages` pages (None: the store's own cap).

        Raises:
            NotFound: The repository does not exist.
            LimitExceeded: It has more tags than `pages` pages hold.
        """
        ...


@runtime_checkable
class Referrers(Protocol):
    """
    Optional: a store that can say what is attached to a manifest: OCI 1.1 referrers
    (manifests whose `subject` names it) and cosign's `<alg>-<hex>.sig` / `.att` /
    `.sbom` tags.
    """

    async def referrers_api(self, repo: Repository, digest: Digest) -> list[Descriptor] | None:
        """
        What the referrers API lists for `digest`; None when the registry has no
        referrers API (a registry that has one answers an empty list for any digest).
        """
        ...

    async def referrers(self, repo: Repository, digest: Digest) -> list[Descriptor]:
        """
        The referrers of `digest` in `repo`: the referrers API's list where the registry
        has it, else the entries of the fallback index tagged `referrers_tag(digest)`.
        """
        ...

    async def attached_tags(self, repo: Repository, digest: Digest) -> dict[str, Digest]:
        """cosign's tags for `digest` (`sha256-<hex>.sig`, ...) that exist, with their digests."""
        ...


#: The suffixes of cosign's tag scheme: signatures, attestations, SBOMs.
COSIGN_SUFFIXES = ("sig", "att", "sbom")
# distribution's limit on the length of a tag.
_MAX_TAG = 128
# The referrers tag scheme truncates the algorithm to 32 and the hex to 64 characters
# (OCI distribution spec 1.1, "Referrers Tag Schema"), so that the tag stays valid.
_TAG_ALGORITHM, _TAG_HEX = 32, 64


def referrers_tag(digest: Digest) -> str:
    """
    The tag of `digest`'s fallback referrers index: `sha256-<hex>` (OCI distribution
    spec 1.1, for registries without the referrers API).
    """
    return f"{digest.algorithm[:_TAG_ALGORITHM]}-{digest.hex[:_TAG_HEX]}"


def cosign_tags(digest: Digest) -> list[str]:
    """
    cosign's tags for `digest`: `sha256-<hex>.sig`, `.att`, `.sbom` (none for digests
    whose tag would be longer than a tag may be: cosign does not truncate).
    """
    tags = [f"{digest.tag}.{suffix}" for suffix in COSIGN_SUFFIXES]
    return [tag for tag in tags if len(tag) <= _MAX_TAG]


def attached_to(tag: str) -> tuple[Digest, str | None] | None:
    """
    The digest a tag of either scheme is about, and cosign's suffix (None for the
    referrers tag `sha256-<hex>` itself); None for any other tag.
    """
    name, dot, suffix = tag.partition(".")
    if dot and suffix not in COSIGN_SUFFIXES:
        return None
    algorithm, dash, hex_part = name.partition("-")
    try:
        digest = Digest(algorithm, hex_part) if dash else None
    except InputError:
        return None
    if digest is None:
        return None
    return digest, suffix if dot else None


@runtime_checkable
class Untrusted(Protocol):
    """
    Optional: a source whose content nobody vouched for (a tarball from elsewhere).

    Its blobs are verified only as they stream, so one tampered blob is found only when
    it is read. The engine pushes no manifest from such a source until every blob of the
    run has landed verified: a tampered tarball then leaves no image of it behind, not
    just its own, whoever drives the engine.
    """

    #: Whether the store's content is untrusted (True for a tarball).
    untrusted: bool


@runtime_checkable
class HostBound(Protocol):
    """
    Optional: a store whose transfers count against network hosts' limits (a registry).

    The engine takes from it everything that bounds a transfer: each host's slots
    (`Hosts.hold`), the blobs in flight across hosts (`Hosts.limits`) and the retry
    policy (`Hosts.retry`), so that its caller need not pass any of them.
    """

    def host_of(self, repo: Repository) -> str:
        """The host key whose concurrency slots a transfer to or from `repo` uses."""
        ...

    @property
    def hosts(self) -> Hosts:
        """The per-host limits and state of the transport the store speaks through."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageEntry:
    """A top-level image of a run, as a file-backed store records it."""

    #: The reference the user named (digest form), kept as the image's name.
    reference: Reference
    #: Its manifest or index.
    manifest: Manifest
    #: Tags the user's inputs named for it (re-applied by later imports).
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Contents:
    """Everything a run will write, known before the first byte moves."""

    images: tuple[ImageEntry, ...]
    #: Every manifest and index, children before parents, each once.
    manifests: tuple[Manifest, ...]
    #: Every blob, each once.
    blobs: tuple[Descriptor, ...]


@runtime_checkable
class Preparing(Protocol):
    """
    Optional: a destination that wants the whole run's contents before any blob (a
    tarball lays out every header first, then fills blob data concurrently).
    """

    async def prepare(self, contents: Contents) -> None:
        """Lay out `contents`; called once, after planning, before any put."""
        ...


@runtime_checkable
class Committing(Protocol):
    """Optional: a destination that must be finished explicitly after success."""

    async def commit(self) -> None:
        """Make the result visible (e.g. fsync and rename a temporary file)."""
        ...


class VerifiedBody:
    """
    Passes chunks through while hashing them, and holds the last chunk back until the
    digest and size are checked.

    Holding the last chunk back is what makes "nothing is committed on a mismatch" true
    for a streamed upload: a registry that received `Content-Length: n` and fewer bytes
    never commits the blob. HTTP libraries report an exception raised inside a request
    body as a connection error, so the real cause is kept in `error` for the caller.
    With `hashing=False` only the size is checked (see `Verifier`).
    """

    __slots__ = ("_chunks", "_stream", "error", "verifier")

    def __init__(
        self, desc: Descriptor, chunks: AsyncIterable[bytes], *, hashing: bool = True
    ) -> None:
        self.verifier = Verifier(desc.digest, desc.size, hashing=hashing)
        self._chunks = chunks
        #: The exception that stopped the stream, if any (source failure or mismatch).
        self.error: RelocatorError | None = None
        self._stream: AsyncGenerator[bytes, None] | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        # One stream per body, kept so that `aclose` can end it: the HTTP library that
        # iterates it may drop it half-way (a failed upload) without closing it.
        if self._stream is None:
            self._stream = self._passed()
        return self._stream

    async def aclose(self) -> None:
        """End the stream wherever it stopped (the uploader always calls this)."""
        if self._stream is not None:
            await self._stream.aclose()

    async def _passed(self) -> AsyncGenerator[bytes, None]:
        pending: bytes | None = None
        try:
            async for chunk in self._chunks:
                self.verifier.update(chunk)
                if pending is not None:
                    yield pending
                pending = chunk
            self.verifier.check()
        except RelocatorError as exc:
            self.error = exc
            raise
        if pending is not None:
            yield pending

    def reraise(self) -> None:
        """Raise the stream's own failure, if it had one (call when the upload failed)."""
        if self.error is not None:
            raise self.error
