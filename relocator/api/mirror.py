"""
`mirror`: keep copies of chosen repositories and tags.

The config (`relocator.config.mirror`, `docs/mirror.md`) names sources; this command
lists each source repository's tags, keeps those its rules select, resolves them to
digests and hands the images to the same engine `relocate` uses, with one registry
store as both source and destination (so a blob already in the destination registry is
mounted, not copied). Each image lands with its source tag and relocator's digest tag;
images and tags the destination already has are skipped, so a second run moves nothing.
With `includeReferrers` (per source or in `defaults`) or the request's
`include_referrers` (every source), what is attached to the images is copied too, as
`relocate` does.

With `check` nothing is copied: `mirrorcheck` says what is missing or stale at the
destinations.

With `keep_going` a source that cannot be listed or resolved (a missing repository, a
registry that is down) is reported as failed and the others are mirrored; it counts
towards exit code 9 and appears in the report's `failures`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import anyio

from relocator.config.mirror import MirrorConfig, MirrorSource, load_mirror_config
from relocator.config.semver import Version, parse_version
from relocator.engine import ImageFailure, Job, first_error
from relocator.engine.events import ImageFailed, Notice
from relocator.engine.resolve import Resolution, resolve_all
from relocator.errors import InputError, RelocatorError
from relocator.oci import Digest, Reference, Repository, shown
from relocator.store import RegistryStore

from .inputs import InputImage
from .mirrorcheck import Check, check_jobs
from .registries import mirror_settings, registry_store
from .requests import MirrorRequest
from .result import Incomplete, Result
from .session import Session
from .targets import Target, select_platforms
from .text import count as _count
from .transfer import Hooks, transfer

# Tags named in one log line at most; the rest are counted.
_TAGS_SHOWN = 12
# Stands in for the version of tags that are not versions (they sort last, by text).
_NO_VERSION = Version(0, 0, 0)


async def mirror(request: MirrorRequest, session: Session) -> Result:
    """Copy what the configs select to their destinations, or (`check`) compare only."""
    config = load_mirror_config(request.configs)
    options = request.transfer
    failed = Failed(session)
    settings = mirror_settings(request.registries, config)
    async with session.client(request.registries, settings, destination=None) as client:
        store = registry_store(client, request.registries)
        targets = await select_all(config, store, failed, keep_going=options.keep_going)
        jobs = jobs_of(targets)
        if request.check:
            session.log(f"checking {_count(len(jobs), 'image')} at their destinations...")
            findings = await check_jobs(jobs, store)
            check = Check(findings=findings,
                          failures=tuple((str(f.source), f.error) for f in failed.failures))
            return Result(check=check, hosts=session.hosts())
        tagged = sum(1 for target in targets if target.tags)
        session.log(
            f"mirroring {_count(len(jobs), 'image')} ({_count(tagged, 'tag')}) from "
            f"{_count(len(config.sources) - len(failed.failures), 'source')}..."
        )
        for target in targets:
            session.log(f"will mirror {target.image.names[0]} -> {_landing(target)}")
        moved = await transfer(
            session, options, request.registries, jobs, store, store, client,
            verb="mirrored",
            referrers_of=_referring(jobs, targets, every=options.include_referrers),
            hooks=Hooks(failed_before=failed.failures),
        )
    if moved.report is None and failed.failures:
        # A dry run stops before the engine's report; the failed sources still count.
        raise Incomplete(
            f"{len(failed.failures)} of {_count(len(config.sources), 'source')} failed; the "
            "plan above is of the others",
            hint="see the failed sources above",
            result=Result(plan=moved.plan, hosts=session.hosts()),
        )
    return Result(report=moved.report, plan=moved.plan, hosts=session.hosts())


class Failed:
    """
    The sources that failed before the transfer (with `keep_going`), for the final
    report and its count of failures.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        #: Sources that could not be listed or resolved.
        self.failures: list[ImageFailure] = []

    def fail(self, source: MirrorSource, error: RelocatorError) -> None:
        """Record a source that failed, and say so now."""
        reference = source.image or Reference.from_repo(source.repository)
        failure = ImageFailure(source=reference, error=str(error))
        self.failures.append(failure)
        self.session.emit(ImageFailed(str(reference), failure.error))
        self.session.log(f"failed: {source.where}: {source.name}: {failure.error}",
                         repeats=True)


async def select_all(
    config: MirrorConfig, store: RegistryStore, failed: Failed, *, keep_going: bool
) -> list[Target]:
    """
    Every image the sources select, resolved, in config order (tags sorted per source).

    Raises:
        RelocatorError: A source failed and not `keep_going`.
    """
    chosen: list[list[Target]] = [[] for _ in config.sources]

    async def one(position: int, source: MirrorSource) -> None:
        try:
            chosen[position] = await select_source(source, store, failed.session)
        except RelocatorError as exc:
            if not keep_going:
                raise
            failed.fail(source, exc)
        except BaseExceptionGroup as group:
            error = first_error(group)
            if not keep_going or not isinstance(error, RelocatorError):
                raise
            failed.fail(source, error)

    try:
        async with anyio.create_task_group() as tg:
            for position, source in enumerate(config.sources):
                tg.start_soon(one, position, source)
    except BaseExceptionGroup as group:
        raise first_error(group) from None
    return [target for targets in chosen for target in targets]


async def select_source(
    source: MirrorSource, store: RegistryStore, session: Session
) -> list[Target]:
    """
    The images one source selects: the tags its rules keep (or its one image), each
    resolved to a digest, narrowed to the source's platforms.

    Raises:
        NotFound: The repository, or an image, does not exist.
        InputError: An index has none of the platforms asked for.
    """
    if source.image is not None:
        wanted = [(source.image, source.image.tag)]
    else:
        wanted = [
            (Reference.from_repo(source.repository, tag=tag), tag)
            for tag in await _tags(source, store, session)
        ]
    requests = [Resolution(reference=ref) for ref, _ in wanted]
    resolved = await resolve_all(requests, store) if requests else {}
    destination = source.destination.of(source.repository)
    targets = []
    for request, (ref, tag) in zip(requests, wanted, strict=True):
        digest_ref = resolved[request]
        image = InputImage(
            reference=digest_ref,
            names=(str(ref),),
            written=dataclasses.replace(digest_ref, tag=tag),
        )
        targets.append(
            Target(
                image=image,
                destination=destination,
                sources=(digest_ref,),
                primary=digest_ref,
                tags=(tag,) if tag else (),
                include_referrers=source.include_referrers,
            )
        )
    if source.platforms and targets:
        targets = await _narrow(targets, store, source, session)
    return targets


async def _tags(source: MirrorSource, store: RegistryStore, session: Session) -> list[str]:
    """The source repository's tags its rules select, sorted; warns about misses."""
    rules = source.tags
    if rules is None:  # pragma: no cover - only repository sources are listed
        raise InputError(f"{source.where}: {source.name} has no tag rules")
    listing = await store.tags(source.repository)
    for refused in listing.refused:
        session.emit(Notice(
            f"{source.where}: skipped {shown(refused)} listed by {source.repository}: "
            "not a valid tag"
        ))
    listed = listing.tags
    for missing in rules.absent(listed):
        session.emit(Notice(f"{missing.where}: tag '{missing.tag}' is not in {source.repository}"))
    selected = sorted(rules.select(listed), key=_tag_order)
    if selected:
        names = ", ".join(selected[:_TAGS_SHOWN])
        if len(selected) > _TAGS_SHOWN:
            names += f" and {len(selected) - _TAGS_SHOWN} more"
        session.log(f"{source.repository}: {len(selected)} of {_count(len(listed), 'tag')}: {names}")
    else:
        session.emit(Notice(
            f"{source.where}: no tag of {source.repository} matches its rules "
            f"({_count(len(listed), 'tag')} listed)"
        ))
    return selected


async def _narrow(
    targets: list[Target], store: RegistryStore, source: MirrorSource, session: Session
) -> list[Target]:
    """`select_platforms` for each target at once, in order."""
    narrowed: list[list[Target]] = [[] for _ in targets]

    async def one(position: int) -> None:
        narrowed[position] = await select_platforms(
            [targets[position]], store, source.platforms, session
        )

    try:
        async with anyio.create_task_group() as tg:
            for position in range(len(targets)):
                tg.start_soon(one, position)
    except BaseExceptionGroup as group:
        raise first_error(group) from None
    return [target for chosen in narrowed for target in chosen]


def jobs_of(targets: Sequence[Target]) -> list[Job]:
    """
    One job per image and destination repository, with every tag it gets there.

    Two tags of one image (`1.25` and `1.25.3`) become one job with both tags: the
    engine pushes an image once and applies its other tags after. Two images wanting one
    destination tag are refused by the engine while it plans (`TagConflict`).
    """
    merged: dict[tuple[Repository, Digest], tuple[Reference, list[str]]] = {}
    for target in targets:
        for job in target.jobs():
            _, tags = merged.setdefault((job.destination, job.digest), (job.source, []))
            tags.extend(tag for tag in job.tags if tag not in tags)
    return [
        Job(source=source, destination=destination, tags=tuple(tags))
        for (destination, _), (source, tags) in merged.items()
    ]


def _referring(jobs: Sequence[Job], targets: Sequence[Target], *, every: bool) -> list[Job]:
    """The jobs whose attachments are copied: of sources with `includeReferrers`, or all."""
    if every:
        return list(jobs)
    wanted = {
        (target.destination, source.digest)
        for target in targets
        if target.include_referrers
        for source in target.sources
    }
    return [job for job in jobs if (job.destination, job.digest) in wanted]


def _tag_order(tag: str) -> tuple[bool, Version, str]:
    """Versions first, by semver precedence (1.9.0 before 1.10.0), then other tags."""
    version = parse_version(tag)
    return version is None, version or _NO_VERSION, tag


def _landing(target: Target) -> str:
    """Where a target's image lands, by its tag if it has one."""
    if target.tags:
        return str(Reference.from_repo(target.destination, tag=target.tags[0]))
    return target.relocated

