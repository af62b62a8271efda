"""
Reading one file out of a gzip-compressed layer tarball, streaming and bounded.

An imgpkg bundle keeps its `.imgpkg/images.yml` inside its one layer. That layer comes
from whoever pushed the bundle, so it is untrusted: it is gunzipped chunk by chunk with
caps on the bytes inflated, on the tar members walked and on the wanted file's size, and
member names are checked, so a gzip bomb, a tar of a million empty members or a
`../../x` name ends in one error line instead of memory or time spent.
"""

from __future__ import annotations

import posixpath
import zlib
from dataclasses import dataclass

from relocator.errors import LimitExceeded, ManifestError

_BLOCK = 512
# Tar header fields (POSIX ustar): name, size, type flag, ustar magic, name prefix.
_NAME = slice(0, 100)
_SIZE = slice(124, 136)
_TYPE = 156
_MAGIC = slice(257, 262)
_PREFIX = slice(345, 500)
_REGULAR = (b"0", b"\0", b"7")
# Extended headers naming the next member (pax `path=`, GNU long name); others skipped.
_PAX, _GNU_LONG_NAME = b"x", b"L"
_SKIPPED = frozenset(b"gKV")
#: The most a pax or GNU long-name record may hold (names are short).
MAX_EXTENDED_HEADER = 64 * 1024
# How much a single zlib call may inflate: keeps one hostile chunk from growing large.
_INFLATE_STEP = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerLimits:
    """The caps on reading one file out of a layer."""

    #: Bytes gunzipped before the file is found (a gzip bomb stops here).
    max_inflated: int = 256 * 1024 * 1024
    #: Tar members walked before the file is found.
    max_members: int = 10_000
    #: The file's own size.
    max_file: int = 8 * 1024 * 1024


class LayerFileFinder:
    """
    Fed the layer's compressed bytes chunk by chunk, finds the member named `wanted`
    and returns its content (see `feed`); `finish` after the last chunk.

    Names are compared after dropping a leading `./`, as imgpkg compares cleaned paths.
    """

    def __init__(self, wanted: str, *, what: str, limits: LayerLimits | None = None) -> None:
        self._wanted = wanted
        self._what = what
        self._limits = limits or LayerLimits()
        self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._inflated = 0
        self._members = 0
        self._buffer = bytearray()
        # State: reading a header, skipping `_remaining` bytes, or capturing them.
        self._remaining = 0
        self._skip = 0
        self._capture: bytearray | None = None
        self._capture_kind = b""
        self._next_name: str | None = None
        self._found: bytes | None = None
        self._ended = False

    def feed(self, chunk: bytes) -> bytes | None:
        """
        Take the next compressed chunk; the file's content once it is complete.

        Raises:
            LimitExceeded: A cap was passed.
            ManifestError: The layer is not a gzip tarball, or a name is unsafe, or the
                file is not a regular file.
        """
        if self._found is not None or self._ended:
            return self._found
        data = chunk
        while data or self._inflate.unconsumed_tail:
            source = data or self._inflate.unconsumed_tail
            try:
                out = self._inflate.decompress(source, _INFLATE_STEP)
            except zlib.error as exc:
                raise ManifestError(f"{self._what}: layer is not gzip data ({exc})") from None
            data = b""
            self._inflated += len(out)
            if self._inflated > self._limits.max_inflated:
                raise LimitExceeded(
                    f"{self._what}: layer inflates past {self._limits.max_inflated} bytes "
                    f"before {self._wanted} is found"
                )
            if self._take(out):
                return self._found
            if self._inflate.eof:
                break
        return None

    def finish(self) -> bytes:
        """
        The file's content, after the last chunk was fed.

        Raises:
            ManifestError: The layer ended without the file.
        """
        if self._found is None:
            raise ManifestError(f"{self._what}: expected to find {self._wanted} in its layer")
        return self._found

    def _take(self, data: bytes) -> bool:
        self._buffer += data
        while True:
            if self._skip:
                step = min(self._skip, len(self._buffer))
                if self._capture is not None:
                    self._capture += self._buffer[:step]
                del self._buffer[:step]
                self._skip -= step
                if self._skip:
                    return False
                if self._capture is not None and self._member_done():
                    return True
                continue
            if len(self._buffer) < _BLOCK:
                return False
            header = bytes(self._buffer[:_BLOCK])
            del self._buffer[:_BLOCK]
            if header == bytes(_BLOCK):  # end of archive
                self._ended = True
                return False
            if self._header(header):
                return True

    def _header(self, header: bytes) -> bool:
        self._members += 1
        if self._members > self._limits.max_members:
            raise LimitExceeded(
                f"{self._what}: layer has more than {self._limits.max_members} members "
                f"before {self._wanted}"
            )
        size = _octal(header[_SIZE], self._what)
        padded = -(-size // _BLOCK) * _BLOCK
        kind = header[_TYPE : _TYPE + 1]
        if kind in (_PAX, _GNU_LONG_NAME):
            if size > MAX_EXTENDED_HEADER:
                raise LimitExceeded(
                    f"{self._what}: layer has a {size}-byte extended tar header "
                    f"(at most {MAX_EXTENDED_HEADER})"
                )
            self._start(padded, capture=True, kind=kind, size=size)
            return False
        name = self._next_name if self._next_name is not None else _header_name(header)
        self._next_name = None
        if kind and kind[0] in _SKIPPED:
            self._start(padded, capture=False)
            return False
        clean = _checked_name(name, self._what)
        if clean == self._wanted:
            if kind not in _REGULAR:
                raise ManifestError(
                    f"{self._what}: {self._wanted} in its layer is not a regular file"
                )
            if size > self._limits.max_file:
                raise LimitExceeded(
                    f"{self._what}: {self._wanted} is {size} bytes "
                    f"(at most {self._limits.max_file})"
                )
            self._start(padded, capture=True, kind=b"file", size=size)
            if padded == 0:
                return self._member_done()
            return False
        self._start(padded, capture=False)
        return False

    def _start(self, padded: int, *, capture: bool, kind: bytes = b"", size: int = 0) -> None:
        self._skip = padded
        self._capture = bytearray() if capture else None
        self._capture_kind = kind
        self._remaining = size
        if capture and padded == 0 and kind != b"file":
            self._member_done()

    def _member_done(self) -> bool:
        content = bytes(self._capture or b"")[: self._remaining]
        self._capture = None
        if self._capture_kind == b"file":
            self._found = content
            return True
        if self._capture_kind == _GNU_LONG_NAME:
            self._next_name = content.split(b"\0", 1)[0].decode("utf-8", "replace")
        else:
            self._next_name = _pax_path(content, self._what) or self._next_name
        return False


def _octal(field: bytes, what: str) -> int:
    text = field.split(b"\0", 1)[0].strip()
    if field[:1] == b"\x80" or field[:1] == b"\xff":
        raise ManifestError(f"{what}: layer has a tar member with a binary size field")
    try:
        return int(text or b"0", 8)
    except ValueError:
        raise ManifestError(f"{what}: layer is not a tar archive") from None


def _header_name(header: bytes) -> str:
    name = header[_NAME].split(b"\0", 1)[0]
    if header[_MAGIC] == b"ustar":
        prefix = header[_PREFIX].split(b"\0", 1)[0]
        if prefix:
            name = prefix + b"/" + name
    return name.decode("utf-8", "replace")


def _pax_path(content: bytes, what: str) -> str | None:
    # Records are "<length> <key>=<value>\n".
    found = None
    rest = content
    while rest:
        length_text, _, _ = rest.partition(b" ")
        try:
            length = int(length_text)
        except ValueError:
            raise ManifestError(f"{what}: layer has a malformed pax header") from None
        if length <= 0 or length > len(rest):
            raise ManifestError(f"{what}: layer has a malformed pax header")
        record, rest = rest[:length], rest[length:]
        key, _, value = record[len(length_text) + 1 :].rstrip(b"\n").partition(b"=")
        if key == b"path":
            found = value.decode("utf-8", "replace")
    return found


def _checked_name(name: str, what: str) -> str:
    """The member name without a leading `./`; unsafe names are refused."""
    if "\0" in name or name.startswith("/") or "\\" in name:
        raise ManifestError(f"{what}: layer has an unsafe member name {name!r}")
    if any(part == ".." for part in name.split("/")):
        raise ManifestError(f"{what}: layer has a member name outside the bundle {name!r}")
    clean = posixpath.normpath(name) if name else name
    return clean.removeprefix("./")
