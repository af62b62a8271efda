"""
Where images live: one `Store` protocol with a registry, tarball and layout behind it.
"""

from __future__ import annotations

from relocator.store.base import (
    BlobMounter,
    Committing,
    Contents,
    HostBound,
    ImageEntry,
    Preparing,
    Store,
    TagLister,
    Untrusted,
    VerifiedBody,
)
from relocator.store.listings import TagListing
from relocator.store.ranges import RangePolicy
from relocator.store.registry import RegistryStore

__all__ = (
    "BlobMounter",
    "Committing",
    "Contents",
    "HostBound",
    "ImageEntry",
    "Preparing",
    "RangePolicy",
    "RegistryStore",
    "Store",
    "TagLister",
    "TagListing",
    "Untrusted",
    "VerifiedBody",
)
