"""
Running one shard of a split run: upload this shard's blobs, then sweep the whole plan.

No shard waits for another. A worker uploads the blobs the `Assignment` gives it (each
into its home repositories, skipping what is there), then sweeps: it asks the
destination which manifests and blobs are there and pushes every manifest whose blobs
and children are all present (children first, tags last), mounting blobs from their
home into the other repositories that need them. Whatever order the workers run in,
concurrently or one after another, the last one to finish its blobs finds everything
ready and completes the run; the others report how many manifests they left waiting.
Two workers pushing the same manifest by digest is harmless: the content is the same.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import anyio

from relocator.oci import Digest, Reference, Repository
from relocator.store import BlobMounter, Store

from .events import NullSink, ProgressSink, Swept
from .execute import CopyOptions, Executor
from .groups import first_error
from .plan import BlobNode, Key, Plan
from .report import Report
from .shard import Assignment, Shard, assign

T = TypeVar("T")

# Existence checks in flight at once (each host's own limit is lower), as when planning.
_CHECK_WORKERS = 64


async def run_shard(
    plan: Plan,
    shard: Shard,
    *,
    source: Store,
    destination: Store,
    options: CopyOptions | None = None,
    sink: ProgressSink | None = None,
) -> Report:
    """
    Carry out shard `shard` of `plan`: its blobs, then every manifest that is ready.

    `plan` must be the whole plan, made from the source alone (`make_plan` with
    `skip_present=False`, or read from a plan file): every worker derives the same
    split from it. Returns normally when manifests still wait on other shards
    (`Report.manifests_waiting`); a worker restarted after an interruption skips what
    already landed and finishes its share.

    Raises:
        ValueError: `plan` was made against the destination (it skipped what is there).
        RelocatorError: The first failure (without `options.keep_going`).
    """
    if plan.present or plan.manifests_present or any(b.present for b in plan.blobs.values()):
        raise ValueError("a shard needs the whole plan, made without looking at the destination")
    options = options or CopyOptions()
    sink = sink or NullSink()
    assignment = assign(plan, shard.count, mounts=isinstance(destination, BlobMounter))
    try:
        uploads = await _upload_share(plan, assignment, shard, source, destination, options, sink)
        sweep = await _Sweep(plan, assignment, destination).run()
        pushed = await Executor(sweep.plan, source, destination, options, sink).run()
    except BaseExceptionGroup as group:
        raise first_error(group) from None
    report = _combined(uploads, pushed)
    report.manifests_waiting = sweep.waiting + len(sweep.plan.manifests) - pushed.manifests_pushed
    sink.emit(Swept(str(shard), pushed.manifests_pushed, report.manifests_waiting))
    return report


async def _upload_share(
    plan: Plan,
    assignment: Assignment,
    shard: Shard,
    source: Store,
    destination: Store,
    options: CopyOptions,
    sink: ProgressSink,
) -> Report:
    """Upload this shard's blobs into their homes, skipping those already there."""
    blobs = {
        digest: BlobNode(
            desc=plan.blobs[digest].desc,
            sources=list(plan.blobs[digest].sources),
            destinations=list(assignment.homes[digest]),
        )
        for digest in assignment.blobs_of(shard.index)
    }

    async def check(item: tuple[BlobNode, Repository]) -> None:
        blob, repo = item
        if await destination.blob_exists(repo, blob.desc):
            blob.present.add(repo)

    await _each(((b, r) for b in blobs.values() for r in b.destinations), check)
    # A plan of blobs alone: the executor's workers, retries and host limits move them.
    share = Plan(jobs=[], blobs=blobs)
    return await Executor(share, source, destination, options, sink).run()


@dataclass(slots=True, kw_only=True)
class _Swept:
    """What a sweep found: the plan of what can be pushed now, and how much must wait."""

    plan: Plan
    waiting: int


@dataclass(slots=True)
class _Sweep:
    """Asks the destination what is there and plans pushing every manifest that is ready."""

    whole: Plan
    assignment: Assignment
    destination: Store
    present: set[Key] = field(default_factory=set)
    #: (repository, blob) pairs the destination has.
    landed: set[tuple[Repository, Digest]] = field(default_factory=set)

    async def run(self) -> _Swept:
        """Check the destination, then pick out what is ready, bottom-up."""
        whole = self.whole
        # Top-level images first: one present image spares a check of everything below.
        roots = list(dict.fromkeys(
            (job.destination, job.digest) for job in whole.jobs
            if (job.destination, job.digest) in whole.manifests
        ))
        await _each(roots, self._check_manifest)
        await _each([k for k in whole.manifests if k not in self.present], self._check_manifest)
        # Where each blob must be and where it can come from: a repository that already
        # has it is neither mounted into again nor counted as waiting.
        wanted = {
            (repo, digest)
            for key, node in whole.manifests.items()
            if key not in self.present
            for digest in node.blobs
            for repo in (key[0], *self._homes(digest, key[0]))
        }
        await _each(wanted, self._check_blob)
        ready: dict[Key, None] = {}
        for key, node in whole.manifests.items():  # bottom-up: children come first
            if key in self.present:
                continue
            blobs_ready = all(
                any((repo, digest) in self.landed for repo in (key[0], *self._homes(digest, key[0])))
                for digest in node.blobs
            )
            if blobs_ready and all(k in self.present or k in ready for k in node.manifests):
                ready[key] = None
        waiting = sum(1 for k in whole.manifests if k not in self.present and k not in ready)
        return _Swept(plan=self._plan_of(ready), waiting=waiting)

    def _homes(self, digest: Digest, repo: Repository) -> list[Repository]:
        """Where `repo` gets the blob from: itself if a home, else a home it can mount from."""
        homes = self.assignment.homes[digest]
        if repo in homes:
            return [repo]
        return [h for h in homes if h.registry == repo.registry]

    async def _check_manifest(self, key: Key) -> None:
        if key in self.present:
            return
        target = Reference.from_repo(key[0], digest=key[1])
        if await self.destination.manifest_exists(target) is not None:
            self._mark_present(key)

    def _mark_present(self, key: Key) -> None:
        # A manifest at the destination implies everything below it: nothing pushes a
        # manifest before what it references.
        stack = [key]
        while stack:
            key = stack.pop()
            if key in self.present:
                continue
            self.present.add(key)
            node = self.whole.manifests.get(key)
            if node is not None:
                stack.extend(node.manifests)

    async def _check_blob(self, item: tuple[Repository, Digest]) -> None:
        repo, digest = item
        if await self.destination.blob_exists(repo, self.whole.blobs[digest].desc):
            self.landed.add(item)

    def _plan_of(self, ready: dict[Key, None]) -> Plan:
        """The executor's plan: ready manifests, their blobs (mounted from home), images."""
        whole = self.whole
        manifests = {key: whole.manifests[key] for key in ready}
        blobs: dict[Digest, BlobNode] = {}
        for key, node in manifests.items():
            for digest in node.blobs:
                blob = blobs.get(digest)
                if blob is None:
                    homes = [h for h in self.assignment.homes[digest]
                             if (h, digest) in self.landed]
                    blob = blobs[digest] = BlobNode(
                        desc=whole.blobs[digest].desc,
                        sources=list(whole.blobs[digest].sources),
                        destinations=homes,
                        present=set(homes),
                    )
                if key[0] not in blob.destinations:
                    blob.destinations.append(key[0])
                    if (key[0], digest) in self.landed:
                        blob.present.add(key[0])
        done = self.present | set(ready)
        jobs = [job for job in whole.jobs if (job.destination, job.digest) in done
                or job in whole.failed]
        return Plan(
            jobs=jobs,
            present={job for job in jobs if (job.destination, job.digest) in self.present},
            manifests=manifests,
            manifests_present=set(self.present),
            blobs=blobs,
            excluded=list(whole.excluded),
            failed=dict(whole.failed),
        )


def _combined(uploads: Report, sweep: Report) -> Report:
    """
    One report of both phases. Blobs present are those of this shard's share found
    already uploaded; the sweep's own count would repeat every blob it checked.
    """
    return Report(
        images=sweep.images,
        failures=sweep.failures,
        manifests_pushed=sweep.manifests_pushed,
        manifests_present=sweep.manifests_present,
        blobs_copied=uploads.blobs_copied + sweep.blobs_copied,
        blobs_mounted=uploads.blobs_mounted + sweep.blobs_mounted,
        blobs_present=uploads.blobs_present,
        blobs_excluded=sweep.blobs_excluded,
        bytes_copied=uploads.bytes_copied + sweep.bytes_copied,
        bytes_mounted=uploads.bytes_mounted + sweep.bytes_mounted,
        bytes_present=uploads.bytes_present,
        retries=uploads.retries + sweep.retries,
        seconds=uploads.seconds + sweep.seconds,
    )


async def _each(items: Iterable[T], check: Callable[[T], Awaitable[None]]) -> None:
    """Run `check` on every item, a fixed set of workers at a time (a task costs 4 KiB)."""
    pending: Iterator[T] = iter(items)

    async def worker() -> None:
        for item in pending:
            await check(item)

    async with anyio.create_task_group() as tg:
        for _ in range(_CHECK_WORKERS):
            tg.start_soon(worker)
