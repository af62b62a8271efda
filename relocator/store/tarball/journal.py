"""
The resume journal: which blobs of an unfinished tarball are already in place.

A small JSON-lines file beside the temporary tarball. The first line describes the
layout the temporary file was laid out with; each further line records one blob whose
bytes were written and flushed to disk *before* the line was (so a line never names
bytes that are not there; a torn last line after a crash is ignored). Nothing in it is
trusted: a resumed run re-hashes every region it reuses.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from relocator.errors import InvalidDigest
from relocator.oci import Digest
from relocator.outfiles import fsync_directory, open_own
from relocator.store.tarball.fileio import io_error, unlink

log = logging.getLogger(__name__)

_KIND = "relocator-tarball-journal"
_VERSION = 1
# A journal line is ~120 bytes; 64 MiB holds half a million blobs and bounds what a
# damaged or foreign file can make us read.
_MAX_JOURNAL_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Region:
    """Where a blob's bytes sit in the temporary tarball."""

    offset: int
    size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalHead:
    """The layout a temporary tarball was laid out with."""

    format: str
    #: The layout's fingerprint (`Layout.fingerprint`).
    layout: str
    #: The file's total length.
    size: int

    def line(self) -> bytes:
        doc = {"journal": _KIND, "version": _VERSION, "format": self.format,
               "layout": self.layout, "size": self.size}
        return json.dumps(doc, separators=(",", ":")).encode() + b"\n"


class Journal:
    """The journal file of one tarball being written (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        #: Entries recorded in the file, including those of an earlier run reused in place.
        self.entries = 0

    def start(self, head: JournalHead, entries: dict[Digest, Region]) -> None:
        """Replace the journal with a fresh one holding `head` and `entries` (atomically)."""
        self.close()
        lines = [head.line(), *(_entry(d, r) for d, r in entries.items())]
        try:
            # Staged under a random name, created exclusively without following a link
            # (mkstemp), and kept open after the rename: the journal's own name is
            # predictable, so it is never opened again by name for writing.
            fd, staging = tempfile.mkstemp(
                dir=self.path.parent, prefix=f"{self.path.name}.", suffix=".new"
            )
            try:
                os.write(fd, b"".join(lines))
                os.fsync(fd)
                os.replace(staging, self.path)
            except BaseException:
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(staging)
                raise
            self._fd = fd
            fsync_directory(self.path.parent)
        except OSError as exc:
            raise io_error(exc, f"writing {self.path.name}") from None
        self.entries = len(entries)

    def reopen(self, entries: int) -> None:
        """Append to the existing journal, which already records `entries` blobs."""
        self.close()
        try:
            self._fd = open_own(self.path, os.O_WRONLY | os.O_APPEND)
        except OSError as exc:
            raise io_error(exc, f"opening {self.path.name}") from None
        self.entries = entries

    def record(self, done: list[tuple[Digest, Region]]) -> None:
        """Append `done` and flush; the caller has flushed the blobs' bytes first."""
        if self._fd is None or not done:
            return
        try:
            os.write(self._fd, b"".join(_entry(d, r) for d, r in done))
            os.fsync(self._fd)
        except OSError as exc:
            raise io_error(exc, f"writing {self.path.name}") from None
        self.entries += len(done)

    def close(self) -> None:
        """Close the file (it stays on disk)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def remove(self) -> None:
        """Close and delete the journal."""
        self.close()
        unlink(self.path)


def _entry(digest: Digest, region: Region) -> bytes:
    doc = {"digest": str(digest), "offset": region.offset, "size": region.size}
    return json.dumps(doc, separators=(",", ":")).encode() + b"\n"


def load(path: Path, *, format: str) -> tuple[JournalHead, dict[Digest, Region]] | None:
    """
    Read a journal left by an earlier run; None if there is none or it is unusable
    (another format, another version, unreadable head). Unreadable entry lines are
    skipped: the last one may have been cut by a crash.

    Raises:
        InputError: Something other than a regular file of ours is at `path`.
    """
    try:
        # Only a regular file of ours is read: a FIFO at the name would block the run.
        with os.fdopen(open_own(path, os.O_RDONLY), "rb") as file:
            data = file.read(_MAX_JOURNAL_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.info("ignoring unreadable journal %s: %s", path.name, exc)
        return None
    if len(data) > _MAX_JOURNAL_BYTES:
        log.info("ignoring journal %s: larger than %d bytes", path.name, _MAX_JOURNAL_BYTES)
        return None
    lines = data.split(b"\n")
    head = _head(lines[0], format)
    if head is None:
        log.info("ignoring journal %s: written by another version or format", path.name)
        return None
    regions: dict[Digest, Region] = {}
    for line in lines[1:]:
        found = _region(line, head.size)
        if found is not None:
            regions[found[0]] = found[1]
    return head, regions


def _json(line: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def _head(line: bytes, format: str) -> JournalHead | None:
    doc = _json(line)
    if (
        doc is None
        or doc.get("journal") != _KIND
        or doc.get("version") != _VERSION
        or doc.get("format") != format
        or not isinstance(doc.get("layout"), str)
        or not _count(doc.get("size"))
    ):
        return None
    return JournalHead(format=format, layout=doc["layout"], size=doc["size"])


def _region(line: bytes, file_size: int) -> tuple[Digest, Region] | None:
    doc = _json(line) if line.strip() else None
    if doc is None:
        return None
    offset, size, text = doc.get("offset"), doc.get("size"), doc.get("digest")
    if not _count(offset) or not _count(size) or offset + size > file_size:
        return None
    if not isinstance(text, str):
        return None
    try:
        digest = Digest.parse(text)
    except InvalidDigest:
        return None
    return digest, Region(offset, size)


def _count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
