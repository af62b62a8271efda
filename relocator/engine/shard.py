"""
Splitting one run across machines: `--shard INDEX/COUNT`.

Every worker plans the whole job list from the source alone (no destination state, so
every worker computes the same split), groups images that share any blob or manifest
into one component, and deals the components out to shards by size. A shard then
plans and copies only its own images: images that share blobs always land in the same
shard, so no blob crosses the wire twice, and the union of the shards is the
unsharded run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from relocator.errors import InputError
from relocator.oci import Digest, Repository

from .plan import Job, Plan


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


def components(plan: Plan) -> list[list[Job]]:
    """
    The jobs of `plan` grouped so that jobs sharing a blob or a manifest are together,
    in a deterministic order (largest first, then by first job name).
    """
    parent: dict[Job, Job] = {job: job for job in plan.jobs}

    def find(job: Job) -> Job:
        while parent[job] is not job:
            parent[job] = parent[parent[job]]
            job = parent[job]
        return job

    owner: dict[object, Job] = {}
    sizes: dict[Job, int] = {}
    for job in plan.jobs:
        blobs = plan.job_blobs(job)
        sizes[job] = sum(b.desc.size for b in blobs)
        keys: list[object] = [b.desc.digest for b in blobs]
        keys += [key[1] for key in _job_manifests(plan, job)]
        for key in keys:
            other = owner.setdefault(key, job)
            root_a, root_b = find(job), find(other)
            if root_a is not root_b:
                parent[root_b] = root_a
    groups: dict[Job, list[Job]] = {}
    for job in plan.jobs:
        groups.setdefault(find(job), []).append(job)
    ordered = list(groups.values())
    ordered.sort(key=lambda group: (-_unique_bytes(plan, group), str(group[0].source)))
    return ordered


def select(plan: Plan, shard: Shard) -> list[Job]:
    """The jobs of `shard`: components dealt out greedily to the least loaded shard."""
    loads = [0] * shard.count
    mine: list[Job] = []
    for group in components(plan):
        target = min(range(shard.count), key=lambda i: (loads[i], i))
        loads[target] += _unique_bytes(plan, group) or 1
        if target == shard.index:
            mine.extend(group)
    order = {job: position for position, job in enumerate(plan.jobs)}
    return sorted(mine, key=order.__getitem__)


def _unique_bytes(plan: Plan, group: Sequence[Job]) -> int:
    blobs = {b.desc.digest: b.desc.size for job in group for b in plan.job_blobs(job)}
    return sum(blobs.values())


def _job_manifests(plan: Plan, job: Job) -> set[tuple[Repository, Digest]]:
    found: set[tuple[Repository, Digest]] = set()
    stack = [(job.destination, job.digest)]
    while stack:
        key = stack.pop()
        if key in found:
            continue
        found.add(key)
        node = plan.manifests.get(key)
        if node is not None:
            stack.extend(node.manifests)
    return found
