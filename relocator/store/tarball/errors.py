"""
Errors that only tarballs raise, as subclasses of the one hierarchy in `relocator.errors`.

Bytes read from a local file that do not match their digest will not match it on the
next attempt either, unlike bytes a registry served: these integrity errors say so, so
the engine fails at once instead of retrying a file that cannot heal.
"""

from __future__ import annotations

from relocator.errors import DigestMismatch, RelocatorError, SizeMismatch


class MemberDigestMismatch(DigestMismatch):
    """A tarball member's bytes do not hash to the digest it is stored under."""

    @property
    def temporary(self) -> bool:
        """Never: the file will hold the same bytes next time."""
        return False


class MemberSizeMismatch(SizeMismatch):
    """A tarball member is not as long as the descriptor naming it says."""

    @property
    def temporary(self) -> bool:
        """Never: the file will hold the same bytes next time."""
        return False


class TarballIOError(RelocatorError):
    """The operating system failed to read or write a tarball (disk full, permissions)."""
