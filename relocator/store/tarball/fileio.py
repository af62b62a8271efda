"""
Positional file I/O: the blocking calls the stores run in worker threads.

Positional reads and writes (`pread`, `pwritev`) need no shared file position, so any
number of threads can work on one descriptor at once: that is what lets blobs of one
tarball be written and read concurrently.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from relocator.errors import IntegrityError
from relocator.oci import Verifier
from relocator.store.tarball.errors import TarballIOError

log = logging.getLogger(__name__)

#: Reads are 1 MiB: large enough that per-call overhead vanishes, small enough that
#: memory stays flat however many blobs stream at once.
CHUNK = 1024 * 1024
# pwritev takes at most IOV_MAX buffers (1024 on Linux and macOS).
_MAX_BUFFERS = 1024


def io_error(exc: OSError, what: str) -> TarballIOError:
    """A one-line error for a failed file operation."""
    if exc.errno == errno.ENOSPC:
        return TarballIOError(f"{what}: no space left on the device")
    return TarballIOError(f"{what}: {exc.strerror or exc}")


def read_at(fd: int, offset: int, count: int) -> bytes:
    """Up to `count` bytes at `offset` (fewer only at the end of the file)."""
    parts = []
    while count > 0:
        data = os.pread(fd, count, offset)
        if not data:
            break
        parts.append(data)
        offset += len(data)
        count -= len(data)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def write_at(fd: int, offset: int, data: bytes) -> None:
    """Write all of `data` at `offset`."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def write_buffers(fd: int, offset: int, buffers: Sequence[bytes]) -> None:
    """Write `buffers` back to back at `offset`, with as few system calls as possible."""
    pending = [memoryview(b) for b in buffers if b]
    while pending:
        written = os.pwritev(fd, pending[:_MAX_BUFFERS], offset)
        offset += written
        while written and pending:
            first = pending[0]
            if written >= len(first):
                written -= len(first)
                pending.pop(0)
            else:
                pending[0] = first[written:]
                written = 0


def region_matches(fd: int, offset: int, verifier: Verifier) -> bool:
    """Whether the `verifier.size` bytes at `offset` hash to `verifier.digest`."""
    end = offset + verifier.size
    while offset < end:
        data = os.pread(fd, min(CHUNK, end - offset), offset)
        if not data:
            return False
        verifier.update(data)
        offset += len(data)
    try:
        verifier.check()
    except IntegrityError:
        return False
    return True


def copy_region(src: int, src_offset: int, dst: int, dst_offset: int, verifier: Verifier) -> None:
    """
    Copy `verifier.size` bytes between files, hashing them on the way.

    Raises:
        IntegrityError: They do not hash to `verifier.digest` (the copy is not trusted).
    """
    done = 0
    while done < verifier.size:
        data = os.pread(src, min(CHUNK, verifier.size - done), src_offset + done)
        if not data:
            break
        verifier.update(data)
        write_at(dst, dst_offset + done, data)
        done += len(data)
    verifier.check()


def lock(fd: int, path: Path) -> None:
    """
    Take an exclusive lock on an open file, so two runs never write one tarball.

    Raises:
        TarballIOError: Another process holds it.
    """
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise TarballIOError(f"{path.name} is being written by another run") from None
    except OSError as exc:
        # Some network file systems have no locks (ENOLCK); the run goes on unguarded.
        log.debug("cannot lock %s: %s", path.name, exc)


def unlink(path: Path) -> None:
    """Remove a file if it is there."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
