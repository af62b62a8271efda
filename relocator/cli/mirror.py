"""
`relocator mirror -c mirror.yml`: keep copies of chosen repositories and tags.

The config (`relocator.config.mirror`, `docs/mirror.md`) names sources; this command
lists each source repository's tags, keeps those its rules select, resolves them to
digests and hands the images to the same engine `relocate` uses, with one registry
store as both source and destination (so a blob already in the destination registry is
mounted, not copied). Each image lands with its source tag and relocator's digest tag;
images and tags the destination already has are skipped, so a second run moves nothing.
With `includeReferrers` (per source or in `defaults`) or `--include-referrers` (every
source), what is attached to the images is copied too, as `relocate` does.

With `--check` nothing is copied: `mirrorcheck` says what is missing or stale at the
destinations and the exit code says whether the mirror is in sync.

With `--keep-going` a source that cannot be listed or resolved (a missing repository, a
registry that is down) is reported as failed and the others are mirrored; it counts
towards exit code 9 and appears in the report's `failures`.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence

import anyio

from relocator.config.mirror import MirrorConfig, MirrorSource, load_mirror_config
from relocator.config.semver import Version, parse_version
from relocator.engine import ImageFailure, Job, Report, first_error
from relocator.engine.events import ImageFailed, Notice
from relocator.engine.resolve import Resolution, resolve_all
from relocator.errors import InputError, PartialFailure, RelocatorError
from relocator.oci import Digest, Reference, Repository, shown
from relocator.store import RegistryStore
from relocator.transport import HostState, HttpClient, TransportSettings, urls

from .commands import _count, _transfer, keychain, registry_store, transport_settings
from .inputs import InputImage
from .mirrorcheck import check_jobs, report_check
from .output import Output
from .targets import Target, select_platforms

# Tags named in one log line at most; the rest are counted.
_TAGS_SHOWN = 12
# Stands in for the version of tags that are not versions (they sort last, by text).
_NO_VERSION = Version(0, 0, 0)


async def mirror(args: argparse.Namespace) -> int:
    """`relocator mirror`: copy what the config selects to its destinations."""
    out = MirrorOutput(args, "mirror")
    if args.check and args.report:
        raise InputError(
            "--report describes a transfer and --check copies nothing",
            hint="use --json for the check's result",
        )
    config = load_mirror_config(args.config)
    async with HttpClient(mirror_settings(args, config), keychain(args, out)) as client:
        out.watch(client.hosts)
        store = registry_store(client, args)
        targets = await select_all(config, store, out, keep_going=args.keep_going)
        jobs = jobs_of(targets)
        if args.check:
            out.line(f"checking {_count(len(jobs), 'image')} at their destinations...")
            findings = await check_jobs(jobs, store)
            report_check(out, findings, [(str(f.source), f.error) for f in out.failures])
            return 0
        tagged = sum(1 for target in targets if target.tags)
        out.line(
            f"mirroring {_count(len(jobs), 'image')} ({_count(tagged, 'tag')}) from "
            f"{_count(len(config.sources) - len(out.failures), 'source')}..."
        )
        for target in targets:
            out.line(f"will mirror {target.image.names[0]} -> {_landing(target)}")
        report = await _transfer(
            args, out, jobs, store, store, client, verb="mirrored",
            referrers_of=_referring(jobs, targets, every=args.include_referrers),
        )
    if report is None and out.failures:
        # A dry run stops before the engine's report; the failed sources still count.
        raise PartialFailure(
            f"{len(out.failures)} of {_count(len(config.sources), 'source')} failed; the "
            "plan above is of the others",
            hint="see the failed sources above",
        )
    return 0


class MirrorOutput(Output):
    """
    The command's output, which also carries the sources that failed before the
    transfer (with `--keep-going`) into the final report and its count of failures.
    """

    def __init__(self, args: argparse.Namespace, prefix: str) -> None:
        super().__init__(args, prefix)
        #: Sources that could not be listed or resolved.
        self.failures: list[ImageFailure] = []

    def fail(self, source: MirrorSource, error: RelocatorError) -> None:
        """Record a source that failed, and say so now."""
        reference = source.image or Reference.from_repo(source.repository)
        failure = ImageFailure(source=reference, error=str(error))
        self.failures.append(failure)
        self.emit(ImageFailed(str(reference), failure.error))
        if self.display != "json":
            self.line(f"failed: {source.where}: {source.name}: {failure.error}")

    def summary(self, verb: str, report: Report, hosts: Sequence[HostState]) -> None:
        """The engine's summary, with the failed sources first among its failures."""
        report.failures[:0] = self.failures
        super().summary(verb, report, hosts)


def mirror_settings(args: argparse.Namespace, config: MirrorConfig) -> TransportSettings:
    """The registry flags' settings, with the config's per-registry limits added."""
    settings = transport_settings(args)
    # Limits are kept per API host: Docker Hub's images are named index.docker.io but
    # served by registry-1.docker.io.
    limits = {urls.api_host(r.host): r for r in config.registries}
    return dataclasses.replace(
        settings,
        insecure_hosts=settings.insecure_hosts | {h for h, r in limits.items() if r.insecure},
        per_host_concurrency={
            h: r.concurrency for h, r in limits.items() if r.concurrency is not None
        },
        per_host_rps={
            h: r.requests_per_second for h, r in limits.items()
            if r.requests_per_second is not None
        },
    )


async def select_all(
    config: MirrorConfig, store: RegistryStore, out: MirrorOutput, *, keep_going: bool
) -> list[Target]:
    """
    Every image the sources select, resolved, in config order (tags sorted per source).

    Raises:
        RelocatorError: A source failed and not `keep_going`.
    """
    chosen: list[list[Target]] = [[] for _ in config.sources]

    async def one(position: int, source: MirrorSource) -> None:
        try:
            chosen[position] = await select_source(source, store, out)
        except RelocatorError as exc:
            if not keep_going:
                raise
            out.fail(source, exc)
        except BaseExceptionGroup as group:
            error = first_error(group)
            if not keep_going or not isinstance(error, RelocatorError):
                raise
            out.fail(source, error)

    try:
        async with anyio.create_task_group() as tg:
            for position, source in enumerate(config.sources):
                tg.start_soon(one, position, source)
    except BaseExceptionGroup as group:
        raise first_error(group) from None
    return [target for targets in chosen for target in targets]


async def select_source(
    source: MirrorSource, store: RegistryStore, out: Output
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
            for tag in await _tags(source, store, out)
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
        targets = await _narrow(targets, store, source, out)
    return targets


async def _tags(source: MirrorSource, store: RegistryStore, out: Output) -> list[str]:
    """The source repository's tags its rules select, sorted; warns about misses."""
    rules = source.tags
    if rules is None:  # pragma: no cover - only repository sources are listed
        raise InputError(f"{source.where}: {source.name} has no tag rules")
    listing = await store.tags(source.repository)
    for refused in listing.refused:
        out.emit(Notice(
            f"{source.where}: skipped {shown(refused)} listed by {source.repository}: "
            "not a valid tag"
        ))
    listed = listing.tags
    for missing in rules.absent(listed):
        out.emit(Notice(f"{missing.where}: tag '{missing.tag}' is not in {source.repository}"))
    selected = sorted(rules.select(listed), key=_tag_order)
    if selected:
        names = ", ".join(selected[:_TAGS_SHOWN])
        if len(selected) > _TAGS_SHOWN:
            names += f" and {len(selected) - _TAGS_SHOWN} more"
        out.line(f"{source.repository}: {len(selected)} of {_count(len(listed), 'tag')}: {names}")
    else:
        out.emit(Notice(
            f"{source.where}: no tag of {source.repository} matches its rules "
            f"({_count(len(listed), 'tag')} listed)"
        ))
    return selected


async def _narrow(
    targets: list[Target], store: RegistryStore, source: MirrorSource, out: Output
) -> list[Target]:
    """`select_platforms` for each target at once, in order."""
    narrowed: list[list[Target]] = [[] for _ in targets]

    async def one(position: int) -> None:
        narrowed[position] = await select_platforms(
            [targets[position]], store, source.platforms, out
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

