"""
The temporary file a tarball is built in, beside its target, with its journal.

Three ways to start it, chosen by `PartialTarball.create`:

- fresh: truncate, check the disk has room, write the layout's skeleton;
- in place: an interrupted run left a file of exactly this layout (same fingerprint),
  so its finished blobs are already where they belong; only the skeleton is rewritten;
- by copy: the layout changed (other images), or the blobs come from a finished
  tarball at the target: a new file is built and the reusable blobs are copied into
  their new regions, hashed again on the way. An interrupted run's file is set aside
  while this happens and put back if it fails; a finished tarball is only read.

Every call here blocks: the writer runs them in worker threads.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from relocator.errors import TarError
from relocator.oci import Descriptor, Digest, Verifier
from relocator.outfiles import check_replaceable, fsync_directory, open_own
from relocator.store.tarball.errors import TarballIOError
from relocator.store.tarball.fileio import (
    copy_region,
    io_error,
    lock,
    read_at,
    unlink,
    write_at,
    write_buffers,
)
from relocator.store.tarball.journal import Journal, JournalHead, Region
from relocator.store.tarball.layout import Layout, Slot, coalesce
from relocator.store.tarball.leftover import Leftover

log = logging.getLogger(__name__)

#: `.<name>` + this: the file being built beside the target.
TEMP_SUFFIX = ".relocator-tmp"
#: `.<name>` + this: its journal of finished blobs.
JOURNAL_SUFFIX = ".relocator-journal"
# `.<name>` + this: an interrupted run's file, set aside while its blobs are copied into
# a file of a new layout.
_OLD_SUFFIX = ".relocator-old"
# Headers and metadata are joined into writes of up to 1 MiB.
_SKELETON_WRITE = 1024 * 1024


def temporary_path(path: Path) -> Path:
    """Where the tarball for `path` is built: `.<name>.relocator-tmp` beside it."""
    return path.with_name(f".{path.name}{TEMP_SUFFIX}")


def journal_path(path: Path) -> Path:
    """The journal of the tarball for `path`: `.<name>.relocator-journal` beside it."""
    return path.with_name(f".{path.name}{JOURNAL_SUFFIX}")


@dataclass(slots=True)
class Reused:
    """What `create` took from an earlier run."""

    #: Blobs in place in the new file.
    placed: set[Digest] = field(default_factory=set)
    #: Bytes of blobs the new layout keeps in memory (kbld's embedded configs).
    embedded: dict[Digest, bytes] = field(default_factory=dict)
    #: Bytes of the blobs placed.
    size: int = 0


class PartialTarball:
    """
    The temporary file of one tarball being written, and its journal.

    Args:
        target: The tarball the file will become.
        format: Recorded in the journal, so that a run of another format does not
            reuse it.
    """

    def __init__(self, target: Path, format: str) -> None:
        self.target = target
        self.format = format
        self.path = temporary_path(target)
        self.journal = Journal(journal_path(target))
        self._old = target.with_name(f".{target.name}{_OLD_SUFFIX}")
        self._fd = -1
        #: Whether this run created (or took over) the temporary file.
        self.created = False

    def create(
        self,
        layout: Layout,
        leftover: Leftover | None,
        claimed: Mapping[Digest, Descriptor],
        embedded: set[Digest],
    ) -> Reused:
        """
        Start the file for `layout`, reusing the `claimed` blobs of `leftover`.

        Args:
            layout: Where everything goes.
            leftover: Where the claimed blobs are (None: nothing to reuse).
            claimed: Blobs the engine was told are present (already verified).
            embedded: Blobs the layout keeps in memory rather than in a region.

        Raises:
            TarballIOError: The file cannot be created or written, or does not fit.
            IntegrityError: A claimed blob no longer hashes to its digest.
        """
        head = JournalHead(format=self.format, layout=layout.fingerprint, size=layout.size)
        try:
            unlink(self._old)
            if leftover is not None and leftover.temporary and leftover.head == head:
                return self._in_place(layout, leftover, claimed, embedded)
            if leftover is not None and claimed:
                return self._by_copy(layout, head, leftover, claimed, embedded)
            self._open(os.O_CREAT)
            self._write_skeleton(layout, truncate=True)
            self.journal.start(head, {})
            return Reused()
        except OSError as exc:
            raise io_error(exc, f"preparing {self.path.name}") from None

    def write(self, batch: list[bytes], offset: int) -> None:
        """Write `batch` back to back at `offset`."""
        try:
            write_buffers(self._fd, offset, batch)
        except OSError as exc:
            raise io_error(exc, f"writing {self.path.name}") from None

    def read(self, offset: int, size: int) -> bytes:
        """`size` bytes of the file from `offset` (what a finished blob region holds)."""
        try:
            return read_at(self._fd, offset, size)
        except OSError as exc:
            raise io_error(exc, f"reading {self.path.name}") from None

    def persist(self, done: list[tuple[Digest, Region]]) -> None:
        """Flush the file, then journal `done` (so the journal never names unflushed bytes)."""
        try:
            os.fdatasync(self._fd)
        except OSError as exc:
            raise io_error(exc, f"flushing {self.path.name}") from None
        self.journal.record(done)

    def finish(self, tail: Slot | None, data: bytes) -> None:
        """
        Write `data` into the `tail` region (padded with spaces, which JSON readers
        skip), flush, rename over the target, drop the journal.
        """
        try:
            if tail is not None:
                if len(data) > tail.size:  # pragma: no cover - a reservation bug
                    raise TarError(f"{self.target.name}: {tail.name} outgrew its reservation")
                write_at(self._fd, tail.offset, data + b" " * (tail.size - len(data)))
            os.fsync(self._fd)
            check_replaceable(self.target)
            os.replace(self.path, self.target)
            fsync_directory(self.target.parent)
        except OSError as exc:
            raise io_error(exc, f"finishing {self.path.name}") from None
        self.journal.remove()
        fsync_directory(self.target.parent)

    def close(self) -> None:
        """Close the file and the journal (both stay on disk)."""
        self.journal.close()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def remove(self) -> None:
        """Close and delete the file and the journal."""
        self.close()
        unlink(self.path)
        self.journal.remove()

    # -- internals ---------------------------------------------------------------------

    def _open(self, flags: int) -> None:
        # The name is predictable, so that a resumed run finds the file again; what is
        # at it is therefore never trusted: no link is followed, and only a regular file
        # of ours with one link is opened (`open_own`). A new file is created
        # exclusively, so nothing can be slipped in between the check and the create.
        try:
            self._fd = open_own(self.path, os.O_RDWR | flags)
        except OSError as exc:
            raise io_error(exc, f"creating {self.path.name}") from None
        lock(self._fd, self.target)
        self.created = True

    def _in_place(
        self,
        layout: Layout,
        leftover: Leftover,
        claimed: Mapping[Digest, Descriptor],
        embedded: set[Digest],
    ) -> Reused:
        """Same layout as the interrupted run: keep its file, rewrite the skeleton."""
        self._open(0)
        leftover.close()
        # Reopened first, so that a failure below still counts its blobs as worth keeping.
        self.journal.reopen(len(leftover.regions))
        self._write_skeleton(layout, truncate=False)
        slots = layout.blob_slots()
        reused = Reused()
        for digest, desc in claimed.items():
            region = leftover.regions[digest]
            slot = slots.get(digest)
            if slot is not None:
                if (region.offset, region.size) != (slot.offset, slot.size):
                    # The journal puts it elsewhere than this layout does (an edited
                    # journal): move it, verified.
                    copy_region(self._fd, region.offset, self._fd, slot.offset,
                                Verifier(digest, desc.size))
                reused.placed.add(digest)
                reused.size += desc.size
            if digest in embedded:
                reused.embedded[digest] = read_at(self._fd, region.offset, region.size)
        log.info("%s: reusing %d blobs (%d bytes) of an interrupted run in place",
                 self.target.name, len(reused.placed), reused.size)
        return reused

    def _by_copy(
        self,
        layout: Layout,
        head: JournalHead,
        leftover: Leftover,
        claimed: Mapping[Digest, Descriptor],
        embedded: set[Digest],
    ) -> Reused:
        """Build a new file and copy the claimed blobs into it (see the module docstring)."""
        if leftover.temporary:
            os.replace(self.path, self._old)
        try:
            self._open(os.O_CREAT)
            self._write_skeleton(layout, truncate=True)
            slots = layout.blob_slots()
            reused = Reused()
            copied: dict[Digest, Region] = {}
            for digest, desc in claimed.items():
                region = leftover.regions[digest]
                slot = slots.get(digest)
                if slot is not None:
                    copy_region(leftover.fd, region.offset, self._fd, slot.offset,
                                Verifier(digest, desc.size))
                    copied[digest] = Region(slot.offset, slot.size)
                    reused.placed.add(digest)
                    reused.size += desc.size
                if digest in embedded:
                    reused.embedded[digest] = read_at(leftover.fd, region.offset, region.size)
            os.fdatasync(self._fd)
            self.journal.start(head, copied)
        except BaseException:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            self.created = False
            if leftover.temporary:
                # Put the interrupted run's file back: its journal still describes it.
                os.replace(self._old, self.path)
            else:
                unlink(self.path)
            raise
        leftover.close()
        unlink(self._old)
        log.info("%s: copied %d blobs (%d bytes) from %s", self.target.name,
                 len(reused.placed), reused.size, leftover.path.name)
        return reused

    def _write_skeleton(self, layout: Layout, *, truncate: bool) -> None:
        if truncate:
            os.ftruncate(self._fd, 0)
            self._check_space(layout.size)
        os.ftruncate(self._fd, layout.size)
        for offset, data in coalesce(layout.skeleton, _SKELETON_WRITE):
            write_at(self._fd, offset, data)
        os.fsync(self._fd)

    def _check_space(self, size: int) -> None:
        """Fail before writing anything when the file cannot fit (a sparse file would
        only find out when a blob lands on a full disk)."""
        free = shutil.disk_usage(self.path.parent).free
        if free < size:
            raise TarballIOError(
                f"{self.target.name} needs {size} bytes but {self.path.parent} has {free} free"
            )
