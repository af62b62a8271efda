"""
The transfer every copying job ends with: find what is attached (if asked), plan, and
unless it is a dry run move everything and report.

Lifecycle events frame it (`TransferStarted`, `TransferEnded`, `Summary`) so that a
display knows when to draw and what the outcome was.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

from relocator.engine import CopyOptions, Job, Plan, Report, execute_plan, plan_images
from relocator.engine.events import Notice
from relocator.engine.fallback_index import ReferrersIndex
from relocator.engine.referrers import describe, find_referrers, with_attachments
from relocator.engine.report import ImageFailure
from relocator.engine.shard import Shard, assign
from relocator.engine.sweep import plan_whole, run_shard
from relocator.oci import Digest, Manifest
from relocator.store import BlobMounter, RegistryStore, Store
from relocator.transport import HttpClient

from .events import Summary, TransferEnded, TransferStarted
from .requests import Registries, Transfer
from .result import Incomplete, Result
from .session import Session
from .text import count, megabytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Moved:
    """What a transfer did: its report, or for a dry run the plan as text."""

    report: Report | None = None
    plan: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Hooks:
    """Log lines a job adds around the copy (kbld's, for each command its own)."""

    #: Gets the planned jobs once planning is done, before anything is copied.
    before_copy: Callable[[Sequence[Job]], None] | None = None
    #: Gets the report before the summary.
    after_copy: Callable[[Report], None] | None = None
    #: Failures found before the transfer (mirror's sources), first in the report.
    failed_before: Sequence[ImageFailure] = field(default=())


async def transfer(
    session: Session,
    options: Transfer,
    registries: Registries,
    jobs: Sequence[Job],
    source: Store,
    destination: Store,
    client: HttpClient,
    *,
    verb: str,
    referrers_of: Sequence[Job] = (),
    indexes: Sequence[ReferrersIndex] = (),
    fetched: dict[Digest, Manifest] | None = None,
    hooks: Hooks | None = None,
    planned: Plan | None = None,
) -> Moved:
    """
    Plan and (unless a dry run) execute. With `referrers_of`, what is attached to those
    jobs' images is found first and copied too; `indexes` are referrers indexes to
    merge at the destination afterwards (unpkg); `fetched` are manifests already
    fetched from `source` (by digest), not fetched again. `planned` is the whole plan,
    read from a plan file: nothing is planned, and it runs as one shard of
    `options.shard` (else of one).

    Raises:
        Incomplete: With `keep_going`, after the others finished, if any failed.
    """
    hooks = hooks or Hooks()
    failures: list[ImageFailure] = []
    session.emit(TransferStarted())
    try:
        known: dict[Digest, Manifest] = dict(fetched or {})
        shard = options.shard
        if planned is not None:
            # A plan file holds what is attached already (it was looked up when planning).
            referrers_of = ()
            shard = shard or Shard(0, 1)
        if referrers_of:
            session.log(f"looking up what is attached to {count(len(referrers_of), 'image')}...")
            found = await find_referrers(
                referrers_of, source, package=not isinstance(destination, RegistryStore),
                keep_going=options.keep_going, sink=session.sink, limits=options.limits,
                known=known,
            )
            session.log(f"found {count(len(found.jobs), 'attached image')}")
            for job in found.jobs:
                session.log(f"will also copy {job.source} ({describe(job)})")
            jobs = with_attachments(jobs, found.jobs, session.sink)
            known = {**known, **found.manifests}
            indexes = [*indexes, *found.indexes]
            failures = found.failures
        if planned is not None:
            plan = planned
        else:
            # A sharded worker plans the whole run from the source alone and derives the
            # same split of the blobs from it as every other worker
            # (`relocator.engine.shard`); an unsharded run skips what the destination has.
            make_plan = (
                partial(plan_images, check_on_landing=not options.dry_run)
                if shard is None else plan_whole
            )
            plan = await make_plan(
                jobs,
                source=source,
                destination=destination,
                sink=session.sink,
                include_nondistributable=options.include_nondistributable,
                keep_going=options.keep_going,
                known=known,
                limits=options.limits,
            )
        if shard is not None:
            log_share(session, plan, shard.index, shard.count,
                      mounts=isinstance(destination, BlobMounter))
        for image, layer in plan.excluded:
            session.emit(
                Notice(
                    f"left out non-distributable layer {layer.digest} of {image} "
                    "(pass --include-non-distributable-layers to copy it)"
                )
            )
        if options.dry_run:
            text = describe_plan(plan)
            for line in text.splitlines():
                session.log(line)
            session.emit(TransferEnded(None, session.hosts()))
            return Moved(plan=text)
        if hooks.before_copy is not None:
            hooks.before_copy(plan.jobs)
        # Slots, blobs in flight and the retry policy come from the stores' hosts.
        copy_options = CopyOptions(keep_going=options.keep_going)
        if shard is None:
            report = await execute_plan(
                plan, source=source, destination=destination, options=copy_options,
                sink=session.sink, referrers=indexes,
            )
        else:
            report = await run_shard(
                plan, shard, source=source, destination=destination,
                options=copy_options, sink=session.sink, referrers=indexes,
            )
    except BaseException as exc:
        session.failed(exc)
        raise
    session.emit(TransferEnded(None, session.hosts()))
    report.failures.extend(failures)
    for failure in report.failures:
        session.log(f"failed: {failure.source}: {failure.error}", repeats=True)
    if hooks.after_copy is not None:
        hooks.after_copy(report)
    report.failures[:0] = hooks.failed_before
    session.emit(Summary(verb, report, session.hosts()))
    if report.failures:
        total = len(report.failures) + len(report.images)
        raise Incomplete(
            f"{len(report.failures)} of {count(total, 'image')} failed; "
            "the others were finished",
            hint="see the failed images above; run again to retry only what is missing",
            result=Result(report=report, hosts=session.hosts()),
        )
    return Moved(report=report)


def log_share(session: Session, plan: Plan, index: int, shards: int, *, mounts: bool) -> None:
    """One line: the blobs shard `index` of `shards` uploads, of the whole plan's."""
    assignment = assign(plan, shards, mounts=mounts)
    session.log(
        f"shard {index}/{shards}: uploads {len(assignment.blobs_of(index))} of "
        f"{count(len(plan.blobs), 'blob')} ({megabytes(assignment.loads[index])} of "
        f"{megabytes(sum(assignment.loads))}), then pushes every manifest that is ready"
    )


def describe_plan(plan: Plan) -> str:
    """The plan as text for a dry run: totals, then one line per image."""
    blobs = list(plan.unique_blobs())
    present = [b for b in blobs if not b.missing]
    lines = [
        (f"plan: {count(len(plan.jobs), 'image')} ({len(plan.present)} already at the "
        f"destination), {count(len(plan.manifests), 'manifest')} to push, "
        f"{count(len(blobs), 'unique blob')}: {len(blobs) - len(present)} to move "
        f"({megabytes(plan.bytes_to_move)}), {len(present)} present "
        f"({megabytes(plan.bytes_present)})")
    ]
    for job in plan.jobs:
        if job in plan.failed:
            lines.append(f"failed  {job.source}: {plan.failed[job]}")
        else:
            state = "present" if job in plan.present else "copy   "
            lines.append(f"{state} {job.source} -> {job.target}")
    for image, layer in plan.excluded:
        lines.append(f"skip    non-distributable layer {layer.digest} of {image}")
    return "\n".join(lines) + "\n"


def will_export(session: Session, sources: Sequence[str]) -> None:
    """kbld's first lines: the count (always "images"), then each source, sorted."""
    session.log(f"exporting {len(sources)} images...")
    for source in sorted(sources):
        session.log(f"will export {source}")
