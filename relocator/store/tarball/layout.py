"""
Where every member of a tarball we write goes, decided before the first byte is written.

Sizes are known from descriptors, so a layout is a pure function of the members: each
gets its header, then its data region, padded to whole blocks. Blob regions are filled
later, concurrently, at their offsets. The fingerprint names the layout so that a
resumed run can tell whether a file left behind has the same shape.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from relocator.oci import Digest
from relocator.store.tarball.headers import (
    END_OF_ARCHIVE,
    directory_header,
    file_header,
    link_header,
    padding,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Planned:
    """A member to lay out."""

    name: str
    size: int = 0
    #: Bytes known now (metadata, manifests); None: filled in later.
    data: bytes | None = None
    #: The blob that fills the region later (None for metadata filled at commit).
    digest: Digest | None = None
    directory: bool = False
    #: A hard link to this earlier member's name: a header only, no data.
    link: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Slot:
    """A member's place in the file."""

    name: str
    #: Where its data starts.
    offset: int
    size: int
    digest: Digest | None


@dataclass(frozen=True, slots=True)
class Layout:
    """Every member's header and data region, and the file's total length."""

    slots: tuple[Slot, ...]
    #: (offset, bytes) pieces known at layout time: headers, known data, padding, end.
    skeleton: tuple[tuple[int, bytes], ...]
    size: int
    #: sha256 hex of the skeleton and the blobs each region is for.
    fingerprint: str

    def blob_slots(self) -> dict[Digest, Slot]:
        """Slots filled by blobs, by digest."""
        return {slot.digest: slot for slot in self.slots if slot.digest is not None}

    def slot(self, name: str) -> Slot:
        """The slot of member `name` (KeyError if there is none)."""
        for slot in self.slots:
            if slot.name == name:
                return slot
        raise KeyError(name)


def lay_out(members: Sequence[Planned]) -> Layout:
    """Place `members` in order, each header followed by its data and padding."""
    slots: list[Slot] = []
    skeleton: list[tuple[int, bytes]] = []
    fingerprint = hashlib.sha256()
    position = 0
    for member in members:
        if member.link is not None:
            header = link_header(member.name, member.link)
            skeleton.append((position, header))
            fingerprint.update(header)
            position += len(header)
            continue
        header = directory_header(member.name) if member.directory else file_header(
            member.name, member.size
        )
        skeleton.append((position, header))
        fingerprint.update(header)
        offset = position + len(header)
        if member.data is not None:
            skeleton.append((offset, member.data))
            fingerprint.update(member.data)
        elif member.digest is not None:
            fingerprint.update(str(member.digest).encode())
        pad = padding(member.size)
        if pad:
            skeleton.append((offset + member.size, bytes(pad)))
        if not member.directory:
            slots.append(Slot(name=member.name, offset=offset, size=member.size,
                              digest=member.digest))
        position = offset + member.size + pad
    skeleton.append((position, END_OF_ARCHIVE))
    size = position + len(END_OF_ARCHIVE)
    fingerprint.update(size.to_bytes(8, "big"))
    return Layout(tuple(slots), tuple(skeleton), size, fingerprint.hexdigest())


def coalesce(pieces: Sequence[tuple[int, bytes]], limit: int) -> Iterator[tuple[int, bytes]]:
    """Adjacent pieces joined into writes of up to about `limit` bytes (fewer syscalls)."""
    start, length = 0, 0
    parts: list[bytes] = []
    for offset, data in pieces:
        if parts and (offset != start + length or length >= limit):
            yield start, b"".join(parts)
            parts, length = [], 0
        if not parts:
            start = offset
        parts.append(data)
        length += len(data)
    if parts:
        yield start, b"".join(parts)
