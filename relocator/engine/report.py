"""What a run did, for the CLI's summary, lock files and JSON report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from relocator.oci import Reference


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageResult:
    """One top-level image and where it ended up."""

    source: Reference
    destination: Reference
    how: Literal["copied", "present"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageFailure:
    """A top-level image that could not be completed (with `--keep-going`)."""

    source: Reference
    error: str


@dataclass(slots=True, kw_only=True)
class Report:
    """Counters of one run; every byte count is of unique blobs per destination."""

    images: list[ImageResult] = field(default_factory=list)
    failures: list[ImageFailure] = field(default_factory=list)
    manifests_pushed: int = 0
    manifests_present: int = 0
    #: Manifests of the plan left for other shards: what they need has not all landed
    #: yet (a shard of a split run only; the last shard to finish leaves none).
    manifests_waiting: int = 0
    blobs_copied: int = 0
    blobs_mounted: int = 0
    blobs_present: int = 0
    blobs_excluded: int = 0
    bytes_copied: int = 0
    bytes_mounted: int = 0
    bytes_present: int = 0
    #: Whole-operation retries (a blob copy restarted from a fresh source).
    retries: int = 0
    seconds: float = 0.0

    @property
    def destinations(self) -> dict[Reference, Reference]:
        """Source reference -> destination reference (both by digest)."""
        return {image.source: image.destination for image in self.images}
