"""
The engine's entry points: plan a set of images, then move them.

`plan_images` then `execute_plan` serve every job: registry -> registry (relocate),
registry -> tarball (pkg) and tarball -> registry (unpkg) differ only in the stores
passed in. `relocator.api` (the public API, and through it the command line) calls the
two in turn, with referrers, dry run and keep-going around them; `copy_images` is the
same two calls for engine-level callers (tests, benchmarks). The safety rules belong to
the stores, not to the caller: an untrusted source (a tarball) gets blobs-first from
the executor whoever calls.
"""

from __future__ import annotations

from collections.abc import Sequence

from relocator.oci import Digest, Manifest
from relocator.store import Committing, Contents, ImageEntry, Preparing, Store

from .events import ImagePlanned, ImageStarted, NullSink, Planned, ProgressSink
from .execute import CopyOptions, Executor
from .fallback_index import ReferrersIndex, write_referrers_indexes
from .graph import Job, Plan
from .groups import first_error
from .limits import Limits
from .plan import make_plan
from .report import Report
from .tags import check_tags


async def walk_sources(
    jobs: Sequence[Job],
    *,
    source: Store,
    destination: Store,
    sink: ProgressSink,
    include_nondistributable: bool,
    skip_present: bool,
    keep_going: bool,
    known: dict[Digest, Manifest] | None,
    limits: Limits | None,
    check_on_landing: bool = False,
) -> Plan:
    """
    Check the jobs' tags, announce each job and walk its sources into one plan; what
    `plan_images` and a shard's `plan_whole` share (each announces the plan its way).

    Raises:
        TagConflict: Two images would get one tag in one destination repository.
        RelocatorError: The first failure of the walk.
    """
    # A tarball records each image's tags beside its own name (`ImageEntry`), not in
    # one repository, so images from different sources may share a tag there.
    check_tags(jobs, shared_repository=not isinstance(destination, Preparing))
    try:
        for job in jobs:
            sink.emit(ImageStarted(str(job.source), str(job.target)))
        return await make_plan(
            jobs,
            source,
            destination,
            include_nondistributable=include_nondistributable,
            skip_present=skip_present,
            keep_going=keep_going,
            known=dict(known or {}),
            limits=limits,
            check_on_landing=check_on_landing,
        )
    except BaseExceptionGroup as group:
        raise first_error(group) from None


async def plan_images(
    jobs: Sequence[Job],
    *,
    source: Store,
    destination: Store,
    sink: ProgressSink | None = None,
    include_nondistributable: bool = False,
    skip_present: bool = True,
    keep_going: bool = False,
    known: dict[Digest, Manifest] | None = None,
    limits: Limits | None = None,
    check_on_landing: bool = False,
) -> Plan:
    """
    Plan copying `jobs`: walk the sources, skip what the destination has (a shard's
    run plans the whole, see `relocator.engine.sweep`); `known` are
    manifests already in hand (fetched while finding referrers, or built), by digest;
    `limits` cap what a source may make the plan hold. `check_on_landing` leaves the
    blobs of destination repositories that look new for the executor to ask about as
    they land (one request instead of two per blob; see `Planner`); a plan that is
    only shown (a dry run) asks first.

    Raises:
        InvalidReference: A job's tag is not a valid tag.
        TagConflict: Two images would get one tag in one destination repository
            (checked before anything else: nothing is read or pushed).
        RelocatorError: The first failure (a missing image, an unsupported manifest...).
    """
    sink = sink or NullSink()
    plan = await walk_sources(
        jobs,
        source=source,
        destination=destination,
        sink=sink,
        include_nondistributable=include_nondistributable,
        skip_present=skip_present,
        keep_going=keep_going,
        known=known,
        limits=limits,
        check_on_landing=check_on_landing,
    )
    for job in plan.jobs:
        if job in plan.failed:
            continue
        missing = [b for b in plan.job_blobs(job) if job.destination not in b.present]
        sink.emit(
            ImagePlanned(
                source=str(job.source),
                destination=str(job.target),
                present=job in plan.present,
                blobs_to_move=len(missing),
                bytes_to_move=sum(b.desc.size for b in missing),
            )
        )
    blobs_present = sum(1 for b in plan.blobs.values() if not b.missing)
    sink.emit(
        Planned(
            images=len(plan.jobs),
            images_present=len(plan.present),
            manifests=len(plan.manifests),
            blobs=len(plan.blobs),
            blobs_present=blobs_present,
            bytes_to_move=plan.bytes_to_move,
            bytes_present=plan.bytes_present,
        )
    )
    return plan


async def execute_plan(
    plan: Plan,
    *,
    source: Store,
    destination: Store,
    options: CopyOptions | None = None,
    sink: ProgressSink | None = None,
    referrers: Sequence[ReferrersIndex] = (),
) -> Report:
    """
    Move everything `plan` lists; then merge `referrers` into the fallback referrers
    indexes of destinations without the referrers API (see `write_referrers_indexes`).

    Raises:
        RelocatorError: The first failure; everything else in flight is cancelled, and
            nothing that references a missing piece has been pushed.
    """
    options = options or CopyOptions()
    sink = sink or NullSink()
    executor = Executor(plan, source, destination, options, sink)
    try:
        if isinstance(destination, Preparing):
            await destination.prepare(contents_of(plan))
        report = await executor.run()
        if referrers:
            await write_referrers_indexes(
                referrers, destination, report, sink=sink, keep_going=options.keep_going
            )
    except BaseExceptionGroup as group:
        raise first_error(group) from None
    if isinstance(destination, Committing):
        await destination.commit()
    return report


def contents_of(plan: Plan) -> Contents:
    """What `plan` writes, as the store layer's plain data (for `Preparing` stores)."""
    images = []
    for job in plan.jobs:
        node = plan.manifests.get((job.destination, job.digest))
        if node is not None:
            images.append(ImageEntry(reference=job.source, manifest=node.manifest,
                                     tags=job.tags))
    return Contents(
        images=tuple(images),
        manifests=tuple(node.manifest for node in plan.manifests.values()),
        blobs=tuple(blob.desc for blob in plan.unique_blobs()),
    )


async def copy_images(
    jobs: Sequence[Job],
    *,
    source: Store,
    destination: Store,
    options: CopyOptions | None = None,
    sink: ProgressSink | None = None,
    include_nondistributable: bool = False,
) -> Report:
    """
    Plan and move `jobs` in one call: `plan_images` then `execute_plan`, the pipeline
    `relocator.api.run` drives (which adds referrers, dry run, shards and lock files).
    """
    options = options or CopyOptions()
    plan = await plan_images(
        jobs,
        source=source,
        destination=destination,
        sink=sink,
        include_nondistributable=include_nondistributable,
        keep_going=options.keep_going,
        check_on_landing=True,
    )
    return await execute_plan(
        plan, source=source, destination=destination, options=options, sink=sink
    )
