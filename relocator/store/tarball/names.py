"""
Member names: what blobs are called inside each format, and which names are safe.

A name read from a tarball is untrusted: it must be relative, free of `..` and of any
form that another reader would resolve to a different file, and blob names must spell a
valid digest exactly, since the digest is what the name promises (reliability §4).
"""

from __future__ import annotations

import re
import unicodedata

from relocator.errors import InvalidDigest, TarError
from relocator.oci import Digest

OCI_LAYOUT = "oci-layout"
INDEX_JSON = "index.json"
#: Docker's `docker load` manifest in the OCI format; kbld's descriptor list in kbld's.
MANIFEST_JSON = "manifest.json"
BLOBS = "blobs"

_OCI_BLOB = re.compile(r"blobs/([^/]+)/([^/]+)")
_KBLD_LAYER = re.compile(r"(sha256|sha512)-([^/]+)\.tar\.gz")
_DRIVE = re.compile(r"[A-Za-z]:")


def oci_blob_name(digest: Digest) -> str:
    """`blobs/<algorithm>/<hex>`: where an OCI image layout keeps a blob or manifest."""
    return f"{BLOBS}/{digest.algorithm}/{digest.hex}"


def kbld_layer_name(digest: Digest) -> str:
    """`<algorithm>-<hex>.tar.gz`: kbld's name for a layer, whatever its media type."""
    return f"{digest.algorithm}-{digest.hex}.tar.gz"


def blob_directories(digests: set[Digest] | frozenset[Digest]) -> list[str]:
    """The directories an OCI layout needs for `digests`: `blobs`, `blobs/sha256`..."""
    return [BLOBS, *(f"{BLOBS}/{a}" for a in sorted({d.algorithm for d in digests}))]


def parse_oci_blob_name(name: str, *, where: str) -> Digest | None:
    """
    The digest an OCI layout member name stands for; None for names outside `blobs/`.

    Raises:
        TarError: The name is under `blobs/` but does not spell a valid digest
            (`blobs/sha256/<64 lowercase hex>` or `blobs/sha512/<128 lowercase hex>`).
    """
    if not name.startswith(f"{BLOBS}/"):
        return None
    match = _OCI_BLOB.fullmatch(name)
    if match is None:
        raise TarError(f"{where}: member '{shown(name)}' is not a blob name "
                       "(blobs/<algorithm>/<hex>)")
    return _digest(match.group(1), match.group(2), name, where)


def parse_kbld_layer_name(name: str, *, where: str) -> Digest | None:
    """
    The digest a kbld layer member name stands for; None for other names.

    Raises:
        TarError: The name looks like a layer but does not spell a valid digest.
    """
    match = _KBLD_LAYER.fullmatch(name)
    if match is None:
        return None
    return _digest(match.group(1), match.group(2), name, where)


def _digest(algorithm: str, hex_part: str, name: str, where: str) -> Digest:
    try:
        return Digest.parse(f"{algorithm}:{hex_part}")
    except InvalidDigest:
        raise TarError(
            f"{where}: member '{shown(name)}' does not name a valid digest "
            "(sha256 or sha512, lowercase hex of full length)"
        ) from None


def clean_name(raw: str, *, where: str) -> str:
    """
    The canonical form of a member name: no leading `./`, no trailing `/`.

    Returns "" for the archive's root directory entry (`./`).

    Raises:
        TarError: The name is absolute, climbs out with `..`, holds a backslash, NUL or
            an empty or `.` segment, or is not valid UTF-8.
    """
    text = shown(raw)
    name = raw.removeprefix("./")
    name = name.removesuffix("/")
    if name in ("", "."):
        return ""
    if any("\udc80" <= ch <= "\udcff" for ch in name):
        raise TarError(f"{where}: member '{text}' has a name that is not valid UTF-8")
    if name.startswith("/") or _DRIVE.match(name):
        raise TarError(f"{where}: member '{text}' has an absolute name")
    if "\\" in name or "\x00" in name:
        raise TarError(f"{where}: member '{text}' has a backslash or NUL in its name")
    segments = name.split("/")
    if ".." in segments:
        raise TarError(f"{where}: member '{text}' climbs out of the archive with '..'")
    if "" in segments or "." in segments:
        raise TarError(f"{where}: member '{text}' has a name that is not in canonical form")
    return name


def fold(name: str) -> str:
    """
    The key under which two names count as the same file: Unicode compatibility
    normalised and case-folded, as macOS and Windows file systems compare them.
    """
    return unicodedata.normalize("NFKC", name).casefold()


def shown(name: str) -> str:
    """A name cut to a length that keeps an error message on one line."""
    text = name.encode("unicode_escape").decode("ascii")
    return text if len(text) <= 160 else f"{text[:157]}..."
