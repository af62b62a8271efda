"""Writing files so that readers see the old content or the new, never a half."""

from __future__ import annotations

import contextlib
import os
import tempfile


def atomic_write_text(path: str | os.PathLike[str], text: str, mode: int = 0o600) -> None:
    """
    Replace the file at `path` with `text` (UTF-8) atomically.

    The text goes to a temporary file in the same directory (so the rename cannot cross
    file systems), which gets `mode`, is flushed and fsynced, then renamed over `path`;
    the directory is fsynced too so the rename survives a crash. On any failure the
    temporary file is removed and `path` is left as it was.

    Args:
        path: The file to write; its directory must exist.
        text: The whole new content.
        mode: Permission bits of the new file (default 0600: locks can name private
            registries). Not subject to the umask.

    Raises:
        OSError: The directory is missing or not writable, the disk is full, ...
    """
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    fd, temp = tempfile.mkstemp(
        dir=directory, prefix=f".{os.path.basename(target)}.", suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            os.chmod(temp, mode)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    # Not every platform or file system lets a directory be opened or synced; the data
    # itself is already safe, only the rename's durability is best effort there.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
