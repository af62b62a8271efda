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

import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import anyio

from relocator.oci import Digest, Manifest, Reference, Repository
from relocator.store import BlobMounter, Committing, Preparing, Store

from .copy import walk_sources
from .events import BlobDone, Event, NullSink, Planned, ProgressSink, Swept
from .execute import CopyOptions, Executor
from .fallback_index import ReferrersIndex, write_referrers_indexes
from .graph import BlobNode, Job, Key, Plan
from .groups import first_error
from .limits import Limits
from .report import Report
from .shard import Assignment, Shard, assign

T = TypeVar("T")

# Existence checks in flight at once (each host's own limit is lower), as when planning.
_CHECK_WORKERS = 64


async def plan_whole(
    jobs: Sequence[Job],
    *,
    source: Store,
    destination: Store,
    sink: ProgressSink | None = None,
    include_nondistributable: bool = False,
    keep_going: bool = False,
    known: dict[Digest, Manifest] | None = None,
    limits: Limits | None = None,
) -> Plan:
    """
    The whole plan of `jobs`, made from the source alone (nothing is asked of the
    destination, which other shards are filling): what `run_shard` and `write_plan`
    take. `known` are manifests already in hand, by digest.

    Raises:
        TagConflict: Two images would get one tag in one destination repository.
        RelocatorError: The first failure (a missing image, a manifest over a limit...).
    """
    return await walk_sources(
        jobs,
        source=source,
        destination=destination,
        sink=sink or NullSink(),
        include_nondistributable=include_nondistributable,
        skip_present=False,
        keep_going=keep_going,
        known=known,
        limits=limits,
    )


async def run_shard(
    plan: Plan,
    shard: Shard,
    *,
    source: Store,
    destination: Store,
    options: CopyOptions | None = None,
    sink: ProgressSink | None = None,
    referrers: Sequence[ReferrersIndex] = (),
) -> Report:
    """
    Carry out shard `shard` of `plan`: its blobs, then every manifest that is ready;
    then merge `referrers` into the fallback referrers indexes of destinations without
    the referrers API, listing what has landed so far (the last shard lists all).

    `plan` must be the whole plan, made from the source alone (`plan_whole`, or
    `plan_from_file`): every worker derives the same split from it. Returns normally
    when manifests still wait on other shards (`Report.manifests_waiting`); a worker
    restarted after an interruption skips what already landed and finishes its share.
    A blob of the share that fails to upload fails the worker even with
    `options.keep_going`: no other shard would ever upload it, so the run could not
    complete and must be retried.

    Raises:
        ValueError: `plan` was made against the destination (it skipped what is there).
        TypeError: The destination is a file written in one go (a tarball), which
            several workers cannot share.
        RelocatorError: The first failure (with `options.keep_going`, only an upload of
            the share; an image that fails to complete goes to `Report.failures`).
    """
    if plan.present or plan.manifests_present or any(b.present for b in plan.blobs.values()):
        raise ValueError("a shard needs the whole plan, made without looking at the destination")
    if isinstance(destination, Preparing | Committing):
        raise TypeError("only a registry can be the destination of a split run")
    options = options or CopyOptions()
    sink = sink or NullSink()
    assignment = assign(plan, shard.count, mounts=isinstance(destination, BlobMounter))
    try:
        uploads = await _upload_share(plan, assignment, shard, source, destination,
                                      dataclasses.replace(options, keep_going=False), sink)
        sweep = await _Sweep(plan, assignment, destination, shard.index).run()
        # Every blob the sweep needs was checked, not moved: no "present" line for each.
        quiet = _WithoutPresentBlobs(sink)
        pushed = await Executor(sweep.plan, source, destination, options, quiet).run()
        report = _combined(uploads, pushed)
        report.manifests_waiting = (
            sweep.waiting + len(sweep.plan.manifests) - pushed.manifests_pushed
        )
        sink.emit(Swept(str(shard), pushed.manifests_pushed, report.manifests_waiting))
        if referrers:
            await write_referrers_indexes(referrers, destination, report, sink=sink,
                                          keep_going=options.keep_going)
    except BaseExceptionGroup as group:
        raise first_error(group) from None
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
        if isinstance(destination, BlobMounter):
            # Asked as it lands, by the mount from its own repository that opens the
            # upload anyway (`BlobNode.unchecked`): one request instead of two.
            blob.unchecked.add(repo)
        elif await destination.blob_exists(repo, blob.desc):
            blob.present.add(repo)

    await _each(((b, r) for b in blobs.values() for r in b.destinations), check)
    missing = [b for b in blobs.values() if b.missing]
    sink.emit(
        Planned(
            images=len(plan.jobs),
            images_present=0,
            manifests=len(plan.manifests),
            blobs=len(blobs),
            blobs_present=len(blobs) - len(missing),
            bytes_to_move=sum(b.desc.size * len(b.missing) for b in missing),
            bytes_present=sum(b.desc.size for b in blobs.values() if not b.missing),
        )
    )
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
    #: This worker's shard: its own blobs have just landed, so they are asked about last.
    index: int
    present: set[Key] = field(default_factory=set)
    #: What the destination said about (repository, blob) pairs, each asked once.
    answers: dict[tuple[Repository, Digest], bool] = field(default_factory=dict)
    #: Manifests with a blob that is neither in their repository nor in its home.
    blocked: set[Key] = field(default_factory=set)

    @property
    def landed(self) -> set[tuple[Repository, Digest]]:
        """The (repository, blob) pairs the destination has, of those asked about."""
        return {item for item, there in self.answers.items() if there}

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
        await _each([k for k in whole.manifests if k not in self.present], self._check_blobs)
        ready: dict[Key, None] = {}
        for key, node in whole.manifests.items():  # bottom-up: children come first
            if key in self.present or key in self.blocked:
                continue
            if all(k in self.present or k in ready for k in node.manifests):
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

    async def _check_blobs(self, key: Key) -> None:
        """
        Whether every blob of the manifest is in its repository or can be mounted from
        its home. Stops at the first one missing: early in a split run most manifests
        lack one, and their other blobs need not be asked about. Other shards' blobs
        are asked about first, being the likelier to be missing.
        """
        repo = key[0]
        blobs = sorted(self.whole.manifests[key].blobs,
                       key=lambda d: self.assignment.shard_of[d] == self.index)
        for digest in blobs:
            # The repository itself first: what is there needs no mount.
            for where in dict.fromkeys((repo, *self._homes(digest, repo))):
                if await self._has(where, digest):
                    break
            else:
                self.blocked.add(key)
                return

    async def _has(self, repo: Repository, digest: Digest) -> bool:
        item = (repo, digest)
        there = self.answers.get(item)
        if there is None:
            desc = self.whole.blobs[digest].desc
            there = self.answers[item] = await self.destination.blob_exists(repo, desc)
        return there

    def _plan_of(self, ready: dict[Key, None]) -> Plan:
        """The executor's plan: ready manifests, their blobs (mounted from home), images."""
        whole = self.whole
        landed = self.landed
        manifests = {key: whole.manifests[key] for key in ready}
        blobs: dict[Digest, BlobNode] = {}
        for key, node in manifests.items():
            for digest in node.blobs:
                blob = blobs.get(digest)
                if blob is None:
                    homes = [h for h in self.assignment.homes[digest] if (h, digest) in landed]
                    blob = blobs[digest] = BlobNode(
                        desc=whole.blobs[digest].desc,
                        sources=list(whole.blobs[digest].sources),
                        destinations=homes,
                        present=set(homes),
                    )
                if key[0] not in blob.destinations:
                    blob.destinations.append(key[0])
                    if (key[0], digest) in landed:
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


class _WithoutPresentBlobs:
    """Passes every event on but `BlobDone(how="present")`."""

    def __init__(self, sink: ProgressSink) -> None:
        self._sink = sink

    def emit(self, event: Event) -> None:
        """Pass `event` on unless it is a blob found present."""
        if not (isinstance(event, BlobDone) and event.how == "present"):
            self._sink.emit(event)


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
