"""
Tarballs as stores: `TarballWriter` packages images into one file, `TarballReader`
imports them from one, without changing a digest.

The default format is an OCI image layout inside a plain tar that is kbld's and
imgpkg's format at the same time (their `manifest.json`, with Docker's keys for `docker
load`, and their layer names, hard-linked from the layout's); kbld's format alone is
read, and written on request. See `writer.py` and `reader.py` for how each works,
`ociformat.py`, `kbldformat.py` and `kbldread.py` for the formats.
"""

from __future__ import annotations

from relocator.store.tarball.catalog import Flavour
from relocator.store.tarball.errors import (
    MemberDigestMismatch,
    MemberSizeMismatch,
    TarballIOError,
)
from relocator.store.tarball.images import TarballImage
from relocator.store.tarball.ociformat import CONTAINERD_NAME, REF_NAME, TAGS
from relocator.store.tarball.partial import journal_path, temporary_path
from relocator.store.tarball.reader import TarballReader
from relocator.store.tarball.writer import FORMATS, Format, TarballWriter

__all__ = (
    "CONTAINERD_NAME",
    "FORMATS",
    "REF_NAME",
    "TAGS",
    "Flavour",
    "Format",
    "MemberDigestMismatch",
    "MemberSizeMismatch",
    "TarballIOError",
    "TarballImage",
    "TarballReader",
    "TarballWriter",
    "journal_path",
    "temporary_path",
)
