"""
One pass over a tarball's headers: where each member's data lives, nothing extracted.

The scanner reads every header (and only headers) with positional reads and refuses,
with one line naming the member, anything an image tarball has no business holding:
symbolic links, devices, FIFOs, sparse files, unsafe or duplicate names, members running
past the end of the file, more members than any image tarball has. A hard link is
accepted only as a second name for an earlier regular member (relocator's default
format names each layer twice that way, for kbld and for the OCI layout): it resolves to
that member's bytes inside the archive, so nothing outside the archive is ever reached. It is written here
rather than borrowed from `tarfile`, which keeps the last of two duplicate members,
stops silently at a corrupt header after the first, and reads an extended header of
whatever size it claims into memory (reliability §4).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from relocator.errors import TarError
from relocator.store.tarball.headers import BLOCK
from relocator.store.tarball.names import clean_name, fold, shown

#: A tarball with more members than this is not an image tarball: 100 000 is about 50
#: times the layers of the largest bundles seen (~2 000), and bounds the index to a few
#: tens of MB however many tiny members a hostile archive packs.
MAX_MEMBERS = 100_000
#: PAX records and GNU long names of real archives are a few hundred bytes; 1 MiB is
#: generous and stops a header that claims a terabyte from being read into memory.
MAX_EXTENDED_HEADER = 1024 * 1024

# Decimal digits of a PAX size or record length: 19 reach 2**63, beyond any real file.
_MAX_DIGITS = 19
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_XZ_MAGIC = b"\xfd7zXZ\x00"
_BZIP2_MAGIC = b"BZh"

_REGULAR = (b"0", b"\x00")
_DIRECTORY = b"5"
_PAX_LOCAL = b"x"
_PAX_GLOBAL = b"g"
_GNU_LONG_NAME = b"L"
_HARD_LINK = b"1"
_REFUSED = {
    b"2": "a symbolic link",
    b"3": "a character device",
    b"4": "a block device",
    b"6": "a FIFO",
    b"7": "a contiguous file",
    b"K": "a link (GNU long link name)",
    b"S": "a sparse file",
}

#: Reads `count` bytes at `offset` (fewer only at the end of the file).
ReadAt = Callable[[int, int], bytes]


@dataclass(frozen=True, slots=True)
class Member:
    """A regular file inside a tarball: where its data starts and how long it is."""

    name: str
    offset: int
    size: int


@dataclass(frozen=True, slots=True)
class Listing:
    """Every member of a tarball, by canonical name."""

    files: dict[str, Member]
    directories: frozenset[str]


@dataclass(slots=True)
class _Extended:
    """What PAX records and GNU long names say about the next member."""

    path: str | None = None
    size: int | None = None
    gnu_name: str | None = None
    linkpath: str | None = None

    @property
    def pending(self) -> bool:
        return (self.path is not None or self.size is not None or self.gnu_name is not None
                or self.linkpath is not None)


def scan(read_at: ReadAt, file_size: int, *, where: str) -> Listing:
    """
    List a tarball's members, checking each.

    Args:
        read_at: Positional reads of the file.
        file_size: The file's length; members must end inside it.
        where: How to name the file in errors.

    Raises:
        TarError: Not a tar archive, truncated, corrupt, or holding something refused.
    """
    files: dict[str, Member] = {}
    directories: set[str] = set()
    seen: dict[str, str] = {}
    extended = _Extended()
    position = 0
    headers = 0
    last = "the start"
    while True:
        block = read_at(position, BLOCK)
        if len(block) < BLOCK:
            if position == 0:
                raise TarError(_not_a_tar(where, block))
            raise TarError(
                f"{where} is truncated: it ends after {last} without the end-of-archive marker"
            )
        if block == bytes(BLOCK):
            if extended.pending:
                raise TarError(f"{where}: extended header after {last} has no member")
            break
        if not _checksum_ok(block):
            if position == 0:
                raise TarError(_not_a_tar(where, block))
            raise TarError(f"{where}: corrupt tar header at byte {position} (after {last})")
        headers += 1
        if headers > 3 * MAX_MEMBERS:
            raise TarError(f"{where} has more than {MAX_MEMBERS} members")
        kind = block[156:157]
        raw_name = _name(block)
        size = _number(block[124:136], "size", raw_name, where)
        data = position + BLOCK
        if kind in (_PAX_LOCAL, _PAX_GLOBAL, _GNU_LONG_NAME):
            if size > MAX_EXTENDED_HEADER:
                raise TarError(
                    f"{where}: extended header at byte {position} claims {size} bytes "
                    f"(more than {MAX_EXTENDED_HEADER})"
                )
            _check_extent(data, size, file_size, f"the extended header at byte {position}",
                          where)
            payload = read_at(data, size)
            if kind == _GNU_LONG_NAME:
                extended.gnu_name = _decode(payload.split(b"\x00", 1)[0])
            else:
                _apply_pax(payload, extended, kind == _PAX_GLOBAL, position, where)
            position = data + _blocks(size)
            continue
        name = extended.path or extended.gnu_name or raw_name
        if extended.size is not None:
            size = extended.size
        linkpath = extended.linkpath
        extended = _Extended()
        if kind == _HARD_LINK:
            target = linkpath or _decode(block[157:257].split(b"\x00", 1)[0])
            canonical, original = _hard_link(name, target, size, files, where)
            _register(canonical, seen, where)
            files[canonical] = Member(canonical, original.offset, original.size)
            last = f"member '{shown(canonical)}'"
            position = data
            continue
        if linkpath:
            raise TarError(f"{where}: extended header before '{shown(name)}' describes a link")
        refused = _REFUSED.get(kind)
        if refused is not None:
            raise TarError(
                f"{where}: member '{shown(name)}' is {refused}; "
                "only regular files and directories are allowed"
            )
        is_directory = kind == _DIRECTORY or (kind == b"\x00" and name.endswith("/"))
        if not is_directory and kind not in _REGULAR:
            raise TarError(
                f"{where}: member '{shown(name)}' has unsupported type {kind!r}; "
                "only regular files and directories are allowed"
            )
        canonical = clean_name(name, where=where)
        if not canonical and not is_directory:
            raise TarError(f"{where}: a regular member after {last} has an empty name")
        if canonical:
            _register(canonical, seen, where)
        if is_directory:
            if size:
                raise TarError(f"{where}: directory '{shown(name)}' claims {size} bytes of data")
            if canonical:
                directories.add(canonical)
        else:
            _check_extent(data, size, file_size, f"member '{shown(name)}'", where)
            files[canonical] = Member(canonical, data, size)
        last = f"member '{shown(canonical or name)}'"
        position = data + _blocks(size)
    return Listing(files=files, directories=frozenset(directories))


def _hard_link(
    name: str, target: str, size: int, files: dict[str, Member], where: str
) -> tuple[str, Member]:
    """
    Check a hard link: a canonical name of its own, no data, and an earlier regular
    member as its target. Returns the link's canonical name and the member it names.
    """
    canonical = clean_name(name, where=where)
    if not canonical:
        raise TarError(f"{where}: a hard link has an empty name")
    if size:
        raise TarError(f"{where}: hard link '{shown(name)}' claims {size} bytes of data")
    try:
        original = files.get(clean_name(target, where=where))
    except TarError:
        original = None
    if original is None:
        raise TarError(
            f"{where}: hard link '{shown(name)}' points at '{shown(target)}', which is not "
            "an earlier regular member"
        )
    return canonical, original


def _register(name: str, seen: dict[str, str], where: str) -> None:
    """Record a member name, refusing it if it (or a case or Unicode variant) was seen."""
    key = fold(name)
    other = seen.get(key)
    if other is not None:
        if other == name:
            raise TarError(f"{where}: member '{shown(name)}' appears twice")
        raise TarError(
            f"{where}: members '{shown(other)}' and '{shown(name)}' differ "
            "only by case or Unicode normalisation"
        )
    seen[key] = name
    if len(seen) > MAX_MEMBERS:
        raise TarError(f"{where} has more than {MAX_MEMBERS} members")


def _blocks(size: int) -> int:
    return size + (-size % BLOCK)


def _check_extent(start: int, size: int, file_size: int, what: str, where: str) -> None:
    if start + size > file_size:
        raise TarError(
            f"{where} is truncated: {what} claims {size} bytes at byte {start}, "
            f"but the file has {file_size}"
        )


def _checksum_ok(block: bytes) -> bool:
    field = block[148:156]
    try:
        stored = int(field.replace(b"\x00", b" ").strip() or b"-1", 8)
    except ValueError:
        return False
    unsigned = sum(block[:148]) + 8 * 0x20 + sum(block[156:])
    if stored == unsigned:
        return True
    # Some old writers summed signed chars; tar readers accept both.
    high = sum(1 for b in block[:148] if b > 127) + sum(1 for b in block[156:] if b > 127)
    return stored == unsigned - 256 * high


def _not_a_tar(where: str, block: bytes) -> str:
    for magic, kind in (
        (_GZIP_MAGIC, "gzip"), (_ZSTD_MAGIC, "zstd"), (_XZ_MAGIC, "xz"), (_BZIP2_MAGIC, "bzip2"),
    ):
        if block.startswith(magic):
            return (f"{where} is {kind}-compressed; relocator reads uncompressed tarballs "
                    "(decompress it first)")
    return f"{where} is not a tar archive"


def _name(block: bytes) -> str:
    name = _decode(block[0:100].split(b"\x00", 1)[0])
    if block[257:262] == b"ustar":
        prefix = _decode(block[345:500].split(b"\x00", 1)[0])
        # GNU's "ustar  " headers keep other fields where POSIX keeps the prefix.
        if prefix and block[257:263] == b"ustar\x00":
            name = f"{prefix}/{name}"
    return name


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _number(field: bytes, what: str, name: str, where: str) -> int:
    if field[:1] == b"\x80":
        # GNU base-256: a big-endian positive number after the marker byte.
        return int.from_bytes(field[1:], "big")
    if field[:1] == b"\xff":
        raise TarError(f"{where}: member '{shown(name)}' has a negative {what}")
    text = field.replace(b"\x00", b" ").strip()
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise TarError(f"{where}: member '{shown(name)}' has an unreadable {what}") from None


def _apply_pax(payload: bytes, extended: _Extended, is_global: bool, at: int, where: str) -> None:
    for key, value in _pax_records(payload, at, where):
        if key.startswith("GNU.sparse"):
            raise TarError(f"{where}: member after byte {at} is a sparse file (PAX {key})")
        if key not in ("path", "size", "linkpath"):
            continue
        if is_global:
            # A global path, size or link would rename, resize or re-point every later
            # member.
            raise TarError(f"{where}: global extended header at byte {at} sets '{key}'")
        if key == "path":
            extended.path = value
        elif key == "linkpath":
            extended.linkpath = value
        elif not _decimal(value):
            raise TarError(f"{where}: extended header at byte {at} has an unreadable size")
        else:
            extended.size = int(value)


def _decimal(text: str) -> bool:
    """
    Whether `text` is a decimal number we can read: ASCII digits only (str.isdigit()
    also takes '²', which int() refuses) and at most 19 of them (sizes below 2**63;
    int() refuses more than 4,300 digits).
    """
    return 0 < len(text) <= _MAX_DIGITS and text.isascii() and text.isdigit()


def _pax_records(payload: bytes, at: int, where: str) -> list[tuple[str, str]]:
    records = []
    position = 0
    while position < len(payload):
        if payload[position:].strip(b"\x00") == b"":
            break
        space = payload.find(b" ", position)
        length_text = payload[position:space] if space > 0 else b""
        if not _decimal(length_text.decode("ascii", "replace")):
            raise TarError(f"{where}: malformed extended header at byte {at}")
        length = int(length_text)
        record = payload[position : position + length]
        if length <= space - position or len(record) != length or not record.endswith(b"\n"):
            raise TarError(f"{where}: malformed extended header at byte {at}")
        key, equals, value = record[space - position + 1 : -1].partition(b"=")
        if not equals:
            raise TarError(f"{where}: malformed extended header at byte {at}")
        records.append((_decode(key), _decode(value)))
        position += length
    return records
