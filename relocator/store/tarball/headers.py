"""
Deterministic tar headers for the tarballs we write.

Every header says mode 0644 (directories 0755), owner 0:0 with no user or group names,
modification time 0: the same contents always give the same bytes. Plain ustar headers
are used whenever a name and size fit; PAX records only when they do not (`sha512` blob
names are longer than ustar's 100 characters, members of 8 GiB and more overflow its
size field).
"""

from __future__ import annotations

import tarfile

#: Tar's unit: headers are one block, data is padded to a whole number of blocks.
BLOCK = 512
#: Two zero blocks end an archive.
END_OF_ARCHIVE = bytes(2 * BLOCK)

_FILE_MODE = 0o644
_DIRECTORY_MODE = 0o755


def file_header(name: str, size: int) -> bytes:
    """The header (PAX records included, if needed) of a regular file of `size` bytes."""
    return _header(name, size, tarfile.REGTYPE, _FILE_MODE)


def directory_header(name: str) -> bytes:
    """The header of a directory (`name` without its trailing slash)."""
    return _header(name, 0, tarfile.DIRTYPE, _DIRECTORY_MODE)


def link_header(name: str, target: str) -> bytes:
    """
    The header of a hard link `name` to the earlier member `target`: no data of its own.

    Readers that extract the archive (skopeo's `oci-archive:`, `tar`, `docker load`)
    make `name` a second name for `target`'s file; readers that look members up by name
    without extracting never open it.
    """
    return _header(name, 0, tarfile.LNKTYPE, _FILE_MODE, linkname=target)


def padding(size: int) -> int:
    """Zero bytes that follow `size` bytes of data to complete the last block."""
    return -size % BLOCK


def _header(name: str, size: int, kind: bytes, mode: int, *, linkname: str = "") -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.type = kind
    info.linkname = linkname
    info.mode = mode
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "strict")
