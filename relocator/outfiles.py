"""
Files relocator writes (tarballs, lock files, reports): what may be replaced, and how.

An output path is the user's to name but not the run's to trust: something else may
sit at it (a symbolic link to a file elsewhere, a FIFO, a device node), or be planted
beside it while the run works. The rules, for every file written:

- Only a regular file or a new name is ever replaced, and the check runs before the
  run contacts anything (`check_output`), naming the user's path; the directory must
  exist and be writable.
- The content is built in a temporary file created with `O_EXCL | O_NOFOLLOW` under a
  name nobody can guess (`write_atomically`), or, where a resumed run must find it
  again by name, opened without following a link and refused unless it is a regular
  file this user owns with one link (`open_own`).
- The finished file is renamed over the target, after checking again that the target
  is still a regular file or absent (`check_replaceable`). A rename replaces the
  directory entry itself, so it never writes through whatever the entry is.

Every call here blocks.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path

from relocator.errors import InputError

_KINDS = (
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def kind_of(mode: int) -> str:
    """What a file of `mode` is, in words ("a FIFO"); "a regular file" for one."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return "a regular file" if stat.S_ISREG(mode) else "not a regular file"


def check_output(path: str | os.PathLike[str], *, flag: str | None = None) -> None:
    """
    Refuse an output path that relocator must not replace: anything at it but a
    regular file, or a directory that is missing or not writable.

    Called before a run contacts any registry, so a bad path costs nothing.

    Args:
        path: The path as the user gave it (named as is in the error).
        flag: The flag that named it (`--output`), to start the error with.

    Raises:
        InputError: The path is unusable; the message names it and says why.
    """
    text = os.fspath(path)
    where = f"{flag} {text}" if flag else text
    if not text or text.endswith(os.sep):
        raise InputError(f"{where}: names a directory; give a file name")
    try:
        found = os.lstat(text)
    except (FileNotFoundError, NotADirectoryError):
        found = None  # the directory's own check below says what is wrong
    except OSError as exc:
        raise InputError(f"{where}: {exc.strerror or exc}") from None
    if found is not None and not stat.S_ISREG(found.st_mode):
        raise InputError(
            f"{where}: is {kind_of(found.st_mode)}; relocator replaces only a regular "
            "file or writes a new one"
        )
    directory = os.path.dirname(text) or os.curdir
    try:
        parent = os.stat(directory)
    except OSError as exc:
        reason = "no such directory" if exc.errno == errno.ENOENT else exc.strerror
        raise InputError(f"{where}: cannot write in {directory}: {reason or exc}") from None
    if not stat.S_ISDIR(parent.st_mode):
        raise InputError(f"{where}: cannot write in {directory}: not a directory")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise InputError(f"{where}: cannot write in {directory}: not writable")


def check_replaceable(path: str | os.PathLike[str]) -> None:
    """
    Refuse to rename over `path` unless it is a regular file or absent: the last look
    before a rename, in case something was put there while the run worked.

    Raises:
        InputError: Something else is there now.
    """
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(found.st_mode):
        raise InputError(
            f"{os.fspath(path)}: is {kind_of(found.st_mode)} now, not a regular file; "
            "relocator left it as it is"
        )


def write_atomically(path: str | os.PathLike[str], data: bytes, *, mode: int) -> None:
    """
    Replace the file at `path` with `data` atomically.

    The data goes to a new file in the same directory (so the rename cannot cross file
    systems) that `mkstemp` creates with `O_EXCL | O_NOFOLLOW` under a random name, so
    nothing planted in advance can be written through; it gets `mode`, is flushed and
    fsynced, and is renamed over `path` (checked again first); the directory is
    fsynced too so the rename survives a crash. On any failure the temporary file is
    removed and `path` is left as it was.

    Args:
        path: The file to write; its directory must exist.
        data: The whole new content.
        mode: Permission bits of the new file (not subject to the umask).

    Raises:
        InputError: Something other than a regular file is at `path`.
        OSError: The directory is missing or not writable, the disk is full, ...
    """
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    fd, temp = tempfile.mkstemp(
        dir=directory, prefix=f".{os.path.basename(target)}.", suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        check_replaceable(target)
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    fsync_directory(directory)


def open_own(path: Path, flags: int, mode: int = 0o666) -> int:
    """
    Open a file whose name a later run must find again (an unfinished tarball, its
    journal) without trusting what is at that name: a symbolic link is not followed,
    and anything but a regular file this user owns with one link is refused.

    `O_NONBLOCK` keeps a FIFO or device swapped in at the last moment from blocking
    the open; it changes nothing for a regular file.

    Args:
        path: The file (created, exclusively, when `flags` has `O_CREAT` and nothing
            is there).
        flags: `os.open` flags.
        mode: Permission bits of a new file (subject to the umask).

    Returns:
        The open descriptor.

    Raises:
        InputError: Something else is at `path`; the message names it.
        OSError: The file cannot be opened (missing without `O_CREAT`, permissions).
    """
    try:
        found: os.stat_result | None = os.lstat(path)
    except FileNotFoundError:
        found = None
    if found is not None:
        _refuse_foreign(path, found)
    elif flags & os.O_CREAT:
        # Nothing was there: create it exclusively, so that whatever appears at the name
        # between the look and the open makes the open fail instead of being used.
        flags |= os.O_EXCL
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a link put there since the look above
            raise InputError(f"{path}: is a symbolic link, not a file relocator left; "
                             "remove it") from None
        raise
    try:
        _refuse_foreign(path, os.fstat(fd))
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_own(path: Path) -> None:
    """
    Refuse `path` if something is there that `open_own` would refuse (nothing there
    is fine): the same check, made before a run starts.

    Raises:
        InputError: As `open_own`.
    """
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        return
    _refuse_foreign(path, found)


def _refuse_foreign(path: Path, found: os.stat_result) -> None:
    if not stat.S_ISREG(found.st_mode):
        raise InputError(f"{path}: is {kind_of(found.st_mode)}, not a file relocator left; "
                         "remove it")
    if found.st_uid != os.geteuid():
        raise InputError(f"{path}: belongs to another user, not a file relocator left; "
                         "remove it")
    if found.st_nlink != 1:
        # A hard link to a file elsewhere would be written through like a symlink.
        raise InputError(f"{path}: has {found.st_nlink} hard links, not a file relocator "
                         "left; remove it")


def fsync_directory(path: str | os.PathLike[str]) -> None:
    """Make a rename or unlink in `path` durable (best effort where unsupported)."""
    # Not every platform or file system lets a directory be opened or synced; the data
    # itself is already safe, only the rename's durability is best effort there.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
