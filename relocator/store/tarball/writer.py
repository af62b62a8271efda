"""
Writing a tarball: every header laid out first, blob data filled in concurrently.

Sizes are known from descriptors, so `prepare` writes the whole skeleton of the file at
once (headers, metadata, manifests, padding, end-of-archive marker) and each `blob_put`
then streams its blob straight to its own region with positional writes, hashing it on
the way: no spool file, no second copy, no blob in memory (kbld's format alone excepted:
it embeds configs in its manifest.json and keeps them until the end; the default format
reads them back from the file), any number of blobs at once.

The file is built under a temporary name beside the target (`.<name>.relocator-tmp`,
see `partial.py`) and renamed over it only by `commit`, after a final fsync: a run
that fails leaves whatever was at the target as it was. That name is predictable (a
resumed run must find it), so nothing at it is trusted: no link is followed and only a
regular file of ours is reused (`relocator.outfiles.open_own`); the target itself must
be a regular file or a new name, checked before anything is fetched and again before
the rename.

Leftovers, decided: after a failure the temporary file and its journal
(`.<name>.relocator-journal`, see `journal.py`) are kept if they hold at least one
finished blob, whether or not the run was resumable, so that the next run with
`resume=True` fetches only what is missing; with nothing finished they are removed. The
next run for the same target, resumed or not, reuses or replaces them, and `commit`
removes the journal: at most one leftover per target ever exists, and `kept` names it
for the caller to mention. With `resume=True` and no leftover, the blobs of a tarball
already at the target are reused instead (`leftover.py`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Literal

import anyio
import anyio.to_thread

from relocator.errors import InputError, NotFound, RelocatorError, SizeMismatch, TarError
from relocator.oci import Descriptor, Digest, Manifest, Reference, Repository, Verifier
from relocator.outfiles import check_output, check_own
from relocator.store.base import Contents
from relocator.store.tarball import kbldformat, ociformat
from relocator.store.tarball.contents import Package
from relocator.store.tarball.journal import Region
from relocator.store.tarball.layout import Layout, Slot, lay_out
from relocator.store.tarball.leftover import Leftover, Unfinished, unfinished
from relocator.store.tarball.names import MANIFEST_JSON
from relocator.store.tarball.partial import PartialTarball

log = logging.getLogger(__name__)

Format = Literal["oci", "kbld"]
#: The formats `TarballWriter` writes: an OCI layout in a tar (default), kbld's format.
FORMATS: tuple[Format, ...] = ("oci", "kbld")

# Blob bytes go to a worker thread in batches of up to 4 MiB: one thread hop per trip,
# each chunk hashed and then written while it is still in the CPU's cache.
_WRITE_BATCH = 4 * 1024 * 1024


class TarballWriter:
    """
    A tarball being written, as a destination `Store` (also `Preparing` and
    `Committing`): the engine calls `prepare`, puts every blob and manifest, then
    `commit`; `aclose` always.

    Args:
        path: The tarball to write; replaced only by `commit`.
        format: `"oci"` (an OCI image layout in a tar that is also kbld's and imgpkg's
            format, see `ociformat.py`) or `"kbld"` (kbld's and imgpkg's format alone).
        resume: Reuse the blobs an interrupted run for the same `path` left or, if
            there is no such run, those of the tarball already at `path` (each is
            re-hashed before it counts); `blob_exists` answers True for them.

    Raises:
        InputError: Unknown format; `path` is something other than a regular file or a
            new name in a writable directory; something other than a regular file of
            ours is at the temporary file's or the journal's name.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, format: Format = "oci", resume: bool = False
    ) -> None:
        if format not in FORMATS:
            raise InputError(f"unknown tarball format '{format}' (expected oci or kbld)")
        self.path = Path(path)
        self.name = self.path.name
        self.format: Format = format
        self.resume = resume
        self._file = PartialTarball(self.path, format)
        #: Where the tarball is built, and its journal.
        self.temp_path = self._file.path
        self.journal_path = self._file.journal.path
        # Refused here, before the engine contacts anything: only a regular file or a
        # new name is replaced, and the names a resumed run looks for hold nothing but
        # what a run of ours left.
        check_output(self.path)
        check_own(self.temp_path)
        check_own(self.journal_path)
        #: Bytes of blobs taken from an earlier run instead of being fetched.
        self.reused_bytes = 0
        #: After an `aclose` without `commit`: the temporary file kept for a resumed run
        #: (it holds finished blobs), so that the caller can say where it is.
        self.kept: Path | None = None
        self._committed = False
        self._package: Package | None = None
        self._layout: Layout | None = None
        self._slots: dict[Digest, Slot] = {}
        #: kbld: configs embedded in manifest.json (None until they arrive).
        self._embedded: dict[Digest, bytes | None] = {}
        self._done: set[Digest] = set()
        self._put: set[Digest] = set()
        self._tags: dict[tuple[Repository, str], Digest] = {}
        self._leftover: Leftover | None = None
        self._leftover_checked = False
        self._leftover_lock = anyio.Lock()
        self._claimed: dict[Digest, Descriptor] = {}
        self._unjournaled: list[tuple[Digest, Region]] = []
        self._journal_lock = anyio.Lock()
        # The kernel serializes buffered writes to one file anyway (the inode lock), and
        # threads contending for it there spin on the CPU; queued here they sleep.
        self._write_lock = threading.Lock()

    # -- Store -------------------------------------------------------------------------

    async def manifest_get(self, ref: Reference) -> Manifest:
        """A manifest this run has put; NotFound for anything else."""
        digest = await self.manifest_exists(ref)
        if digest is None or self._package is None:
            raise NotFound(f"{self.name} has no manifest {ref}", host=self.name, status=404)
        return self._package.manifests[digest]

    async def manifest_exists(self, ref: Reference) -> Digest | None:
        """The digest `ref` names if this run has put it (by digest, or by tag)."""
        if ref.digest is not None:
            return ref.digest if ref.digest in self._put else None
        return self._tags.get((ref.repo, ref.tag or "latest"))

    async def manifest_put(self, ref: Reference, manifest: Manifest) -> Digest | None:
        """
        Record a manifest as complete (its bytes were written by `prepare`), and the tag
        if `ref` has one; its digest, which this store keeps as it is.

        Raises:
            TarError: It is not one of the prepared manifests.
        """
        package = self._prepared()
        prepared = package.manifests.get(manifest.digest)
        if prepared is None or prepared.raw != manifest.raw:
            raise TarError(f"{self.name}: manifest {manifest.digest} was not prepared")
        if ref.digest is not None and ref.digest != manifest.digest:
            raise TarError(f"{self.name}: {ref} cannot hold manifest {manifest.digest}")
        self._put.add(manifest.digest)
        if ref.tag is not None:
            self._tags[(ref.repo, ref.tag)] = manifest.digest
        return manifest.digest

    async def blob_exists(self, repo: Repository, desc: Descriptor) -> bool:
        """
        Whether the blob is already in place: written by this run, or (with `resume`)
        left by an interrupted run at a region that still hashes to it.
        """
        if desc.digest in self._done:
            return True
        if not self.resume or self._layout is not None:
            return False
        leftover = await self._find_leftover()
        if leftover is None or desc.digest not in leftover.regions:
            return False
        if await anyio.to_thread.run_sync(leftover.holds, desc):
            self._claimed[desc.digest] = desc
            return True
        return False

    def blob_open(
        self, repo: Repository, desc: Descriptor
    ) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """
        Not supported: a tarball being written is not read back.

        Raises:
            NotFound: Always (on entering the context).
        """
        return _Refused(
            NotFound(f"{self.name} is being written; blobs are not read back from it",
                     host=self.name, status=404)
        )

    async def blob_put(
        self, repo: Repository, desc: Descriptor, chunks: AsyncIterable[bytes]
    ) -> None:
        """
        Stream a blob to its region, hashing it on the way; then record it in the journal.

        A blob whose digest or size does not match leaves garbage in its region, which
        nothing points at: the journal does not list it and `commit` refuses to finish
        until a good copy has been written over it.

        Raises:
            DigestMismatch, SizeMismatch: The bytes are not the blob `desc` names.
            TarError: The blob is not part of the prepared contents.
            TarballIOError: Writing failed (disk full...).
        """
        package = self._prepared()
        digest = desc.digest
        expected = package.blobs.get(digest)
        if expected is None:
            raise TarError(f"{self.name}: blob {digest} was not prepared")
        if desc.size != expected.size:
            raise SizeMismatch(f"{digest}: {desc.size} bytes given, {expected.size} prepared")
        if digest in self._done:
            return
        slot = self._slots.get(digest)
        verifier = Verifier(digest, desc.size)
        kept: list[bytes] | None = [] if digest in self._embedded else None
        offset = slot.offset if slot is not None else -1
        batch: list[bytes] = []
        batched = 0
        async for chunk in chunks:
            if not chunk:
                continue
            batch.append(chunk)
            batched += len(chunk)
            if batched >= _WRITE_BATCH:
                await anyio.to_thread.run_sync(self._write_batch, batch, offset, verifier)
                if kept is not None:
                    kept += batch
                offset += batched
                batch, batched = [], 0
        if batch:
            await anyio.to_thread.run_sync(self._write_batch, batch, offset, verifier)
            if kept is not None:
                kept += batch
        verifier.check()
        if kept is not None:
            self._embedded[digest] = b"".join(kept)
        self._done.add(digest)
        if slot is not None:
            await self._record(digest, Region(slot.offset, slot.size))

    async def aclose(self) -> None:
        """
        Close the files. Without a `commit`, the temporary file and journal stay for a
        resumed run if they hold finished blobs, and are removed otherwise.
        """
        if self._leftover is not None:
            self._leftover.close()
        self._file.close()
        if self._committed or not self._file.created:
            return
        if self._file.journal.entries:
            self.kept = self.temp_path
            log.info(
                "kept %s with %d finished blobs; run again with resume to reuse them",
                self.temp_path.name,
                self._file.journal.entries,
            )
            return
        self._file.remove()

    async def unfinished(self) -> Unfinished | None:
        """
        What an interrupted run for this tarball left that `resume=True` would reuse
        (None if nothing): without `resume`, `prepare` starts the file afresh and the
        caller may want to say so first.
        """
        return await anyio.to_thread.run_sync(
            lambda: unfinished(self.temp_path, self.journal_path, format=self.format)
        )

    # -- Preparing / Committing --------------------------------------------------------

    async def prepare(self, contents: Contents) -> None:
        """
        Lay out the whole tarball and write its skeleton; reuse what a resumed run left.

        Raises:
            TarError: The contents are incomplete, or cannot be written in this format.
            TarballIOError: The file cannot be created or written, or the disk is too full.
        """
        if self._package is not None:
            raise RelocatorError(f"{self.name}: prepare was already called")
        package = Package.of(contents, where=self.name)
        if self.format == "kbld":
            planned = kbldformat.members(package, where=self.name)
        else:
            planned = ociformat.members(package)
        layout = lay_out(planned)
        leftover = await self._find_leftover() if self.resume else None
        self._package = package
        self._slots = layout.blob_slots()
        if self.format == "kbld":
            self._embedded = {d: None for d in package.configs if d in package.blobs}
        # A blob that is also a manifest (rare, but digests allow it) has its bytes
        # written with the manifest.
        self._done = {
            d for d in package.blobs
            if d in package.manifests and d not in self._slots and d not in self._embedded
        }
        reused = await anyio.to_thread.run_sync(
            self._file.create, layout, leftover, self._claimed, set(self._embedded)
        )
        self._done |= reused.placed | set(reused.embedded)
        self._embedded.update(reused.embedded)
        self.reused_bytes = reused.size
        self._layout = layout

    async def commit(self) -> None:
        """
        Finish the tarball: write what only now is known (kbld's manifest.json), flush,
        and rename the temporary file over the target.

        Raises:
            TarError: A blob was never written.
            TarballIOError: Flushing or renaming failed.
        """
        package = self._prepared()
        if self._committed:
            raise RelocatorError(f"{self.name}: commit was already called")
        missing = [d for d in [*self._slots, *self._embedded] if d not in self._done]
        if missing:
            raise TarError(
                f"{self.name}: {len(missing)} blobs were never written (first: {missing[0]})"
            )
        layout = self._prepared_layout()
        if self.format == "kbld":
            configs = {d: raw for d, raw in self._embedded.items() if raw is not None}
            data = kbldformat.render(package, configs, where=self.name)
        else:
            # The configs are in the file already: read back rather than held in memory
            # for the whole run.
            configs = await anyio.to_thread.run_sync(self._written_configs, package)
            data = ociformat.manifest_json(package, configs, where=self.name)
        await anyio.to_thread.run_sync(self._file.finish, layout.slot(MANIFEST_JSON), data)
        self._committed = True

    def members(self) -> tuple[tuple[str, int], ...]:
        """Name and size of each file in the tarball, in tar order (after `prepare`)."""
        if self._layout is None:
            return ()
        return tuple((slot.name, slot.size) for slot in self._layout.slots)

    # -- internals ---------------------------------------------------------------------

    def _prepared(self) -> Package:
        if self._package is None or self._layout is None:
            raise RelocatorError(f"{self.name}: prepare must be called before anything is put")
        return self._package

    def _prepared_layout(self) -> Layout:
        if self._layout is None:
            raise RelocatorError(f"{self.name}: prepare must be called before anything is put")
        return self._layout

    def _written_configs(self, package: Package) -> dict[Digest, bytes]:
        """The configs `manifest.json` embeds, read from their regions (none if it cannot)."""
        if not ociformat.embeds(package):
            return {}
        return {
            digest: self._file.read(self._slots[digest].offset, self._slots[digest].size)
            for digest in package.configs if digest in self._slots
        }

    async def _find_leftover(self) -> Leftover | None:
        async with self._leftover_lock:
            if not self._leftover_checked:
                self._leftover_checked = True
                self._leftover = await anyio.to_thread.run_sync(
                    lambda: Leftover.find(self.temp_path, self.journal_path, format=self.format)
                    or Leftover.donor(self.path)
                )
        return self._leftover

    def _write_batch(self, batch: list[bytes], offset: int, verifier: Verifier) -> None:
        for chunk in batch:
            verifier.update(chunk)
            if offset >= 0:
                with self._write_lock:
                    self._file.write([chunk], offset)
                offset += len(chunk)

    async def _record(self, digest: Digest, region: Region) -> None:
        """Journal a finished blob; concurrent completions share one flush (group commit)."""
        self._unjournaled.append((digest, region))
        async with self._journal_lock:
            batch, self._unjournaled = self._unjournaled, []
            if batch:
                await anyio.to_thread.run_sync(self._file.persist, batch)

class _Refused:
    """A context manager that raises `error` on entry."""

    def __init__(self, error: Exception) -> None:
        self._error = error

    async def __aenter__(self) -> AsyncIterator[bytes]:
        raise self._error

    async def __aexit__(self, *exc_info: object) -> None:
        return None
