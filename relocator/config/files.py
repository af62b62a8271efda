"""Writing files so that readers see the old content or the new, never a half."""

from __future__ import annotations

import os

from relocator.outfiles import write_atomically


def atomic_write_text(path: str | os.PathLike[str], text: str, mode: int = 0o600) -> None:
    """
    Replace the file at `path` with `text` (UTF-8) atomically.

    The text goes to a new file of a random name in the same directory (so the rename
    cannot cross file systems and nothing planted in advance is written through),
    which gets `mode`, is flushed and fsynced, then renamed over `path`; the directory
    is fsynced too so the rename survives a crash. On any failure the temporary file is
    removed and `path` is left as it was (see `relocator.outfiles.write_atomically`).

    Args:
        path: The file to write; its directory must exist.
        text: The whole new content.
        mode: Permission bits of the new file (default 0600: locks can name private
            registries). Not subject to the umask.

    Raises:
        InputError: Something other than a regular file is at `path` (a symbolic
            link, a FIFO, a device): it is left as it is.
        OSError: The directory is missing or not writable, the disk is full, ...
    """
    write_atomically(path, text.encode("utf-8"), mode=mode)
