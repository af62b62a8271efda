"""Content digests: the names blobs and manifests are stored under."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from relocator.errors import DigestMismatch, InvalidDigest, SizeMismatch

if TYPE_CHECKING:
    from hashlib import _Hash

# Only the algorithms the OCI image spec registers; the hex length is fixed per algorithm
# so a digest can never smuggle "/" or ".." into a URL or a file name (CVE-2024-3727).
_HEX_LENGTH = {"sha256": 64, "sha512": 128}
_SHAPE = re.compile(r"(sha256|sha512):([0-9a-f]+)")
# One string per algorithm name: an index of thousands of descriptors must not carry a
# copy of "sha256" in each.
_ALGORITHM_NAMES = {name: name for name in _HEX_LENGTH}


@dataclass(frozen=True, slots=True)
class Digest:
    """
    A validated `<algorithm>:<hex>` digest.

    Build one with `Digest.parse` (untrusted text) or `Digest.of` (bytes in hand); both
    refuse anything that is not lowercase hex of the algorithm's exact length.
    """

    algorithm: str
    hex: str

    ALGORITHMS: ClassVar[frozenset[str]] = frozenset(_HEX_LENGTH)

    def __post_init__(self) -> None:
        length = _HEX_LENGTH.get(self.algorithm)
        if length is None or len(self.hex) != length or not _is_lower_hex(self.hex):
            raise InvalidDigest(f"invalid digest {self.algorithm}:{self.hex[:140]!r}")

    @classmethod
    def parse(cls, text: str) -> Digest:
        """
        Parse `sha256:<64 hex>` or `sha512:<128 hex>`.

        Raises:
            InvalidDigest: The text is not such a digest (names the text, truncated).
        """
        match = _SHAPE.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise InvalidDigest(f"invalid digest {str(text)[:140]!r}")
        return cls(_ALGORITHM_NAMES[match.group(1)], match.group(2))

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        """The digest of `data` under `algorithm`."""
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    def hasher(self) -> _Hash:
        """A fresh hash object of this digest's algorithm."""
        return hashlib.new(self.algorithm)

    def verify(self, data: bytes) -> None:
        """
        Check that `data` hashes to this digest.

        Raises:
            DigestMismatch: It does not.
        """
        actual = hashlib.new(self.algorithm, data).hexdigest()
        if actual != self.hex:
            raise DigestMismatch(f"content of {self} hashed to {self.algorithm}:{actual}")

    @property
    def short(self) -> str:
        """The first 12 hex characters, for humans."""
        return self.hex[:12]

    @property
    def tag(self) -> str:
        """`sha256-<hex>`: the digest spelt as a tag (the OCI referrers tag scheme)."""
        return f"{self.algorithm}-{self.hex}"

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


class Verifier:
    """
    Hashes a stream as it passes and checks its digest and size at the end.

    Kept small because it runs once per chunk on the hot path: one `update` and one
    addition per chunk, nothing else. With `hashing=False` only the size is checked,
    for streams whose receiver verifies the digest itself (a registry must, for
    `PUT ?digest=`): hashing is most of a copy's client CPU.
    """

    __slots__ = ("_hash", "digest", "done", "size")

    def __init__(self, digest: Digest, size: int, *, hashing: bool = True) -> None:
        self.digest = digest
        self.size = size
        self.done = 0
        self._hash = digest.hasher() if hashing else None

    def update(self, chunk: bytes | memoryview) -> None:
        """Account for one more chunk; refuse it at once if it overruns the size."""
        self.done += len(chunk)
        if self.done > self.size:
            raise SizeMismatch(f"{self.digest}: more than the expected {self.size} bytes")
        if self._hash is not None:
            self._hash.update(chunk)

    def check(self) -> None:
        """
        Check size and digest once the stream ended.

        Raises:
            SizeMismatch: Fewer bytes arrived than expected.
            DigestMismatch: The bytes hashed to another digest.
        """
        if self.done != self.size:
            raise SizeMismatch(f"{self.digest}: got {self.done} bytes, expected {self.size}")
        if self._hash is None:
            return
        actual = self._hash.hexdigest()
        if actual != self.digest.hex:
            raise DigestMismatch(
                f"{self.digest}: content hashed to {self.digest.algorithm}:{actual}"
            )


_LOWER_HEX = re.compile(r"[0-9a-f]+")


def _is_lower_hex(text: str) -> bool:
    return isinstance(text, str) and _LOWER_HEX.fullmatch(text) is not None
