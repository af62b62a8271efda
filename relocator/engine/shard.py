"""
Splitting one run across machines: `--shard INDEX/COUNT`.

Every worker holds the same whole plan, made from the source alone (no destination
state), so every worker derives the same `Assignment`: each blob goes to one shard,
largest first to the least loaded, and is uploaded into one repository per destination
registry (its home), from which every other repository that needs it mounts it. Each
manifest has one owner too. `relocator.engine.sweep` runs a shard on that assignment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from relocator.errors import InputError
from relocator.oci import Digest, Repository

from .graph import BlobNode, Key, Plan


@dataclass(frozen=True, slots=True)
class Shard:
    """This worker's share: `index` of `count` (0-based)."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str, *, env_index: str | None = None) -> Shard:
        """
        Parse `INDEX/COUNT`, or `COUNT` alone with the index taken from `env_index` (the
        `JOB_COMPLETION_INDEX` of a Kubernetes Indexed Job).

        Raises:
            InputError: Not of that shape, or the index is not below the count.
        """
        index_text, sep, count_text = text.partition("/")
        if not sep:
            index_text, count_text = env_index or "", index_text
            if not index_text:
                raise InputError(
                    f"--shard {text} gives no index and JOB_COMPLETION_INDEX is not set",
                    hint="use --shard INDEX/COUNT, e.g. --shard 0/4",
                )
        # ASCII digits only: int() also reads '٣' and '1_0', which no one means here.
        if not all(p.isascii() and p.isdigit() and len(p) <= 9 for p in (index_text, count_text)):
            raise InputError(f"invalid shard '{text}'", hint="use INDEX/COUNT, e.g. 0/4")
        index, count = int(index_text), int(count_text)
        if count < 1 or not 0 <= index < count:
            raise InputError(f"invalid shard '{text}': need 0 <= INDEX < COUNT")
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Assignment:
    """Which shard uploads each blob, into which repositories, and who owns each manifest."""

    count: int
    #: Blob digest -> the shard that uploads it.
    shard_of: Mapping[Digest, int]
    #: Blob digest -> the repositories it is uploaded into: one per destination
    #: registry when the destination mounts, else every repository that needs it.
    homes: Mapping[Digest, tuple[Repository, ...]]
    #: Manifest -> the shard that owns it (the owner of its largest blob, or of its
    #: first child for an index).
    owners: Mapping[Key, int]
    #: Bytes each shard uploads (a blob counts once per home).
    loads: tuple[int, ...]

    def blobs_of(self, index: int) -> list[Digest]:
        """The blobs shard `index` uploads."""
        return [digest for digest, owner in self.shard_of.items() if owner == index]

    def manifests_of(self, index: int) -> list[Key]:
        """The manifests shard `index` owns."""
        return [key for key, owner in self.owners.items() if owner == index]


def assign(plan: Plan, count: int, *, mounts: bool = True) -> Assignment:
    """
    Deal the blobs of `plan` out to `count` shards: largest first (ties by digest), each
    to the shard with the fewest bytes so far (ties by index). A function of the plan
    alone, so every worker computes the same assignment; `mounts` says whether the
    destination can mount a blob from one repository into another.
    """
    if count < 1:
        raise ValueError(f"shard count {count} is below 1")
    homes = {digest: _homes(blob, mounts=mounts) for digest, blob in plan.blobs.items()}
    loads = [0] * count
    shard_of: dict[Digest, int] = {}
    order = sorted(plan.blobs.values(), key=lambda b: (-b.desc.size, str(b.desc.digest)))
    for blob in order:
        target = min(range(count), key=lambda i: (loads[i], i))
        shard_of[blob.desc.digest] = target
        loads[target] += blob.desc.size * len(homes[blob.desc.digest])
    return Assignment(count=count, shard_of=shard_of, homes=homes,
                      owners=_owners(plan, shard_of, count), loads=tuple(loads))


def _homes(blob: BlobNode, *, mounts: bool) -> tuple[Repository, ...]:
    # Sorted, not in planning order: concurrent walks finish in any order, and every
    # worker must pick the same repository.
    repos = sorted(set(blob.destinations), key=str)
    if not mounts:
        return tuple(repos)
    first: dict[str, Repository] = {}
    for repo in repos:
        first.setdefault(repo.registry, repo)
    return tuple(first.values())


def _owners(plan: Plan, shard_of: Mapping[Digest, int], count: int) -> dict[Key, int]:
    owners: dict[Key, int] = {}
    # Bottom-up: an index's children are owned before the index looks at them.
    for key, node in plan.manifests.items():
        blobs = [plan.blobs[d].desc for d in node.blobs]
        if blobs:
            largest = min(blobs, key=lambda d: (-d.size, str(d.digest)))
            owners[key] = shard_of[largest.digest]
        elif node.manifests and node.manifests[0] in owners:
            owners[key] = owners[node.manifests[0]]
        else:
            # No blob and no child in the plan (an empty artifact): spread by digest.
            owners[key] = int(key[1].hex[:8], 16) % count
    return owners
