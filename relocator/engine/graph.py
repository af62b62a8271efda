"""
The plan as plain data: the images to copy (`Job`), the manifests and blobs they need
(`ManifestNode`, `BlobNode`), deduplicated in one `Plan`. `relocator.engine.plan` builds
it; the executor, the shard split and the plan file read it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from relocator.errors import RelocatorError
from relocator.oci import Descriptor, Digest, Manifest, Reference, Repository

#: Where a manifest or blob goes: (destination repository, digest).
Key = tuple[Repository, Digest]


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """One top-level image to copy: a source by digest and where it goes."""

    source: Reference
    destination: Repository
    #: Tags to put on the image at the destination (the first one is pushed with the
    #: manifest, the rest re-point at it). Empty: pushed by digest only.
    tags: tuple[str, ...] = ()
    #: The image this one is attached to (a referrer's subject, the image a cosign
    #: signature is about): when the run also lands it, it lands first.
    subject: Digest | None = None

    @property
    def digest(self) -> Digest:
        """The image's digest (jobs are built from digest references only)."""
        if self.source.digest is None:
            raise ValueError(f"job source {self.source} has no digest")
        return self.source.digest

    @property
    def target(self) -> Reference:
        """The image at its destination, by digest."""
        return Reference.from_repo(self.destination, digest=self.digest)


@dataclass(slots=True, kw_only=True)
class ManifestNode:
    """A manifest to push once what it references is at the destination."""

    source: Reference
    destination: Reference
    manifest: Manifest
    #: Blobs (in the same destination repository) that must land first.
    blobs: list[Digest] = field(default_factory=list)
    #: Manifests (children, subject) that must land first.
    manifests: list[Key] = field(default_factory=list)

    @property
    def key(self) -> Key:
        """(destination repository, digest)."""
        return self.destination.repo, self.manifest.digest


@dataclass(slots=True, kw_only=True)
class BlobNode:
    """One unique blob and every destination repository that needs it."""

    desc: Descriptor
    #: Repositories of the source it can be read from (the first is used).
    sources: list[Repository] = field(default_factory=list)
    #: Destination repositories that need it.
    destinations: list[Repository] = field(default_factory=list)
    #: Destination repositories that already have it.
    present: set[Repository] = field(default_factory=set)
    #: Destination repositories not asked at planning (they looked new): the executor
    #: finds out as the blob lands, with a mount from the repository itself, which
    #: answers "present" or opens the upload in one request.
    unchecked: set[Repository] = field(default_factory=set)

    @property
    def missing(self) -> list[Repository]:
        """Destinations still without the blob, in the order they were planned."""
        return [repo for repo in self.destinations if repo not in self.present]


@dataclass(slots=True, kw_only=True)
class Plan:
    """Everything a run moves, deduplicated; built by `make_plan`."""

    jobs: list[Job]
    #: Jobs whose image the destination already has (by digest).
    present: set[Job] = field(default_factory=set)
    #: Tags seen pointing at their image's digest while planning: (repository, tag).
    tags_present: set[tuple[Repository, str]] = field(default_factory=set)
    #: Manifests to push, in bottom-up order (children before parents).
    manifests: dict[Key, ManifestNode] = field(default_factory=dict)
    #: Manifests the destination already has (their sub-graphs were not walked).
    manifests_present: set[Key] = field(default_factory=set)
    blobs: dict[Digest, BlobNode] = field(default_factory=dict)
    #: Non-distributable layers left out, with the image that references them.
    excluded: list[tuple[Reference, Descriptor]] = field(default_factory=list)
    #: Jobs that could not be planned (only with `keep_going`), with the reason.
    failed: dict[Job, RelocatorError] = field(default_factory=dict)

    def blobs_to_move(self) -> list[BlobNode]:
        """Blobs some destination lacks, largest first (so the tail of the run is short)."""
        return sorted(
            (b for b in self.blobs.values() if b.missing),
            key=lambda b: (-b.desc.size, str(b.desc.digest)),
        )

    @property
    def bytes_to_move(self) -> int:
        """
        Bytes still to land: each blob once per destination repository lacking it (a
        second repository of one registry gets it by a mount, which moves no bytes, but
        the executor only knows that once it tried).
        """
        return sum(b.desc.size * len(b.missing) for b in self.blobs.values())

    @property
    def bytes_present(self) -> int:
        """Bytes of blobs every destination already has."""
        return sum(b.desc.size for b in self.blobs.values() if not b.missing)

    def job_blobs(self, job: Job) -> list[BlobNode]:
        """The blobs `job`'s image needs (its own and its children's), each once."""
        found: dict[Digest, BlobNode] = {}
        seen: set[Key] = set()
        stack: list[Key] = [(job.destination, job.digest)]
        while stack:
            key = stack.pop()
            node = self.manifests.get(key)
            if node is None or key in seen:
                continue
            seen.add(key)
            for digest in node.blobs:
                found.setdefault(digest, self.blobs[digest])
            stack.extend(node.manifests)
        return list(found.values())

    def unique_blobs(self) -> Iterator[BlobNode]:
        """Every blob of the plan, once."""
        return iter(self.blobs.values())
