"""
Referrers and signatures: what is attached to an image, found at the source and landed
with it (`--include-referrers`).

Two schemes attach content to an image by its digest:

- OCI 1.1 referrers: manifests whose `subject` names the image, listed by the
  registry's referrers API or, on registries without it, by a fallback index tagged
  `sha256-<hex>` that the pushing clients maintain;
- cosign's tags: `sha256-<hex>.sig`, `.att` and `.sbom`, pointing at signature,
  attestation and SBOM images.

`find_referrers` looks both up for each image of a run and, for an index, for every
manifest below it too (cosign signs the index, but attestations are often attached to
each platform's image), then once more for what it found (a signature on an SBOM), and
turns the results into extra jobs: each lands by digest after its subject, cosign's
under their tag as well. `write_referrers_indexes` (in `fallback_index`) then merges
the fallback index at each destination repository that has no referrers API, keeping
whatever it listed. A tarball cannot be read back while it is written, so for one the fallback index is
packaged instead, as an image tagged `sha256-<hex>` that an import merges the same way.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio

from relocator.errors import ManifestError, NotFound, RelocatorError
from relocator.oci import (
    Descriptor,
    Digest,
    Manifest,
    Reference,
    Repository,
    mediatypes,
)
from relocator.store import Store
from relocator.store.base import Referrers, attached_to, referrers_tag

from .events import Notice, ProgressSink
from .fallback_index import ReferrersIndex, listing_descriptor, merge_index
from .graph import Job, Key
from .groups import first_error
from .limits import MANIFEST_OVERHEAD, Limits
from .plan import MAX_DEPTH
from .report import ImageFailure
from .singleflight import SingleFlight

log = logging.getLogger(__name__)

#: Levels of attachments followed: what is attached to an image, and what is attached
#: to those (a signature on an SBOM); nothing deeper, so a source cannot make a run
#: chase attachments without end.
LEVELS = 2
#: What each cosign tag suffix attaches, for messages.
_COSIGN_KINDS = {"sig": "signature", "att": "attestation", "sbom": "SBOM"}

_T = TypeVar("_T")


@dataclass(slots=True, kw_only=True)
class Attachments:
    """What `find_referrers` found for a run."""

    #: One job per attached manifest and destination, in a deterministic order.
    jobs: list[Job] = field(default_factory=list)
    #: The fallback indexes to merge at the destinations after the copy.
    indexes: list[ReferrersIndex] = field(default_factory=list)
    #: Manifests fetched (or built) on the way, by digest: the planner does not fetch
    #: them again.
    manifests: dict[Digest, Manifest] = field(default_factory=dict)
    #: Images whose attachments could not be listed (only with `keep_going`).
    failures: list[ImageFailure] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Found:
    """One manifest attached to `subject` at the source."""

    source: Reference
    subject: Digest
    #: cosign's tag for it; None for an OCI 1.1 referrer.
    tag: str | None = None
    #: The referrer's manifest (OCI 1.1 referrers only: their index lists it).
    manifest: Manifest | None = None


async def find_referrers(
    jobs: Sequence[Job],
    source: Store,
    *,
    package: bool = False,
    keep_going: bool = False,
    sink: ProgressSink | None = None,
    limits: Limits | None = None,
    known: Mapping[Digest, Manifest] | None = None,
) -> Attachments:
    """
    Everything attached to the images of `jobs` at the source, as extra jobs.

    For each job's image, and every manifest below it when it is an index: its OCI 1.1
    referrers (the referrers API, or the fallback index tag) and cosign's `.sig`,
    `.att` and `.sbom` tags; then the same for each of those (`LEVELS`). A referrer the
    listing names but the source no longer has is left out.

    Args:
        jobs: The images whose attachments are wanted (each lands where its job goes).
        source: Where they are read; must be able to list referrers (a registry).
        package: The destination is a tarball: package each fallback index as an image
            tagged `sha256-<hex>` instead of returning it in `indexes`.
        keep_going: Record an image whose attachments cannot be listed in `failures`
            (and say so through `sink`) instead of failing.
        sink: Where notices go.
        limits: Caps on index entries (referrers listings included), layers and the
            manifest bytes held while looking.
        known: Manifests already fetched from `source`, by digest: not fetched again
            (still held to `limits`).

    Raises:
        RelocatorError: A listing failed (without `keep_going`), or `source` cannot
            list referrers.
        ManifestError: A manifest or listing is over one of the `limits`.
    """
    if not isinstance(source, Referrers):
        raise RelocatorError(f"{source.name} cannot list referrers")
    finder = _Finder(source, source, limits or Limits(), known or {})
    found: dict[int, list[_Found]] = {}
    failures: list[ImageFailure] = []

    async def one(position: int, job: Job) -> None:
        try:
            found[position] = await finder.job(job)
        except (RelocatorError, BaseExceptionGroup) as exc:
            error = first_error(exc) if isinstance(exc, BaseExceptionGroup) else exc
            if not keep_going or not isinstance(error, RelocatorError):
                raise
            failure = ImageFailure(source=job.source, error=f"listing referrers: {error}")
            failures.append(failure)
            if sink is not None:
                sink.emit(Notice(f"{job.source}: {failure.error}"))

    try:
        async with anyio.create_task_group() as tg:
            for position, job in enumerate(jobs):
                tg.start_soon(one, position, job)
    except BaseExceptionGroup as group:
        raise first_error(group) from None
    attachments = _collect(
        [(job, found.get(position, [])) for position, job in enumerate(jobs)], package
    )
    attachments.manifests.update(finder.manifests)
    attachments.failures = failures
    return attachments


class _Finder:
    """Looks attachments up at one source, each (repository, digest, level) once."""

    def __init__(
        self,
        store: Store,
        referrers: Referrers,
        limits: Limits,
        known: Mapping[Digest, Manifest] | None = None,
    ) -> None:
        self._store = store
        self._known = dict(known or {})
        self._src = referrers
        self._limits = limits
        # Bytes of the manifests held (each with its overhead), as a plan counts them.
        self._held = 0
        self.manifests: dict[Digest, Manifest] = {}
        self._lookups: SingleFlight[tuple[Repository, Digest, int], list[_Found]] = SingleFlight()

    async def job(self, job: Job) -> list[_Found]:
        """What is attached to the job's image and to every manifest below it."""
        try:
            root = await self._manifest(job.source)
        except NotFound:
            return []  # the image itself is missing: planning it says so, once
        subjects = [root.digest, *await self._below(job.source, root, 0)]
        lists = await _gather(
            [_bind(self._attached, job.source.repo, d, 1) for d in dict.fromkeys(subjects)]
        )
        return [found for listed in lists for found in listed]

    async def _below(self, ref: Reference, manifest: Manifest, depth: int) -> list[Digest]:
        """Every manifest an index holds, nested indexes walked (parents first)."""
        below: list[Digest] = []
        for child in manifest.manifests:
            if not mediatypes.is_manifest(child.media_type):
                continue
            below.append(child.digest)
            if mediatypes.is_index(child.media_type) and depth < MAX_DEPTH:
                inner = await self._manifest(ref.with_digest(child.digest))
                below += await self._below(ref, inner, depth + 1)
        return below

    async def _manifest(self, ref: Reference) -> Manifest:
        digest = ref.digest
        if digest is not None and digest in self.manifests:
            return self.manifests[digest]
        already = self._known.get(digest) if digest is not None else None
        manifest = already if already is not None else await self._store.manifest_get(ref)
        self._limits.check(manifest, str(ref))
        if manifest.digest not in self.manifests:
            self._held += len(manifest.raw) + MANIFEST_OVERHEAD
            self._limits.check_plan_bytes(self._held, str(ref))
        self.manifests[manifest.digest] = manifest
        return manifest

    async def _attached(self, repo: Repository, digest: Digest, level: int) -> list[_Found]:
        return await self._lookups.run(
            (repo, digest, level), _bind(self._look_up, repo, digest, level)
        )

    async def _look_up(self, repo: Repository, digest: Digest, level: int) -> list[_Found]:
        listed, tagged = await _gather(
            [_bind(self._referrers, repo, digest), _bind(self._tagged, repo, digest)]
        )
        if level >= LEVELS:
            return [*listed, *tagged]

        async def follow(found: _Found) -> list[_Found]:
            more = await self._attached(repo, found.source.digest or digest, level + 1)
            return [found, *more]

        chains = await _gather([_bind(follow, found) for found in [*listed, *tagged]])
        return [found for chain in chains for found in chain]

    async def _referrers(self, repo: Repository, digest: Digest) -> list[_Found]:
        descriptors = await self._src.referrers(repo, digest)
        if len(descriptors) > self._limits.index_entries:
            raise ManifestError(
                f"{repo}@{digest} has {len(descriptors)} referrers, more than the limit of "
                f"{self._limits.index_entries}",
                hint="raise it with --limit index-entries=N if the source is trusted",
            )

        async def fetch(desc: Descriptor) -> _Found | None:
            ref = Reference.from_repo(repo, digest=desc.digest)
            try:
                manifest = await self._manifest(ref)
            except NotFound:
                # Fallback indexes outlive what they list when a referrer is deleted
                # without updating them; there is nothing to copy.
                log.info("referrer %s of %s is listed but missing at the source", ref, digest)
                return None
            return _Found(source=ref, subject=digest, manifest=manifest)

        unique = {desc.digest: desc for desc in reversed(descriptors)}
        fetched = await _gather([_bind(fetch, d) for d in reversed(unique.values())])
        return [found for found in fetched if found is not None]

    async def _tagged(self, repo: Repository, digest: Digest) -> list[_Found]:
        tags = await self._src.attached_tags(repo, digest)
        return [
            _Found(source=Reference.from_repo(repo, digest=target), subject=digest, tag=tag)
            for tag, target in tags.items()
        ]


def _collect(per_job: Sequence[tuple[Job, list[_Found]]], package: bool) -> Attachments:
    """Turn what was found into jobs (each once per destination) and index listings."""
    jobs: dict[Key, Job] = {}
    listings: dict[tuple[Repository, Digest], dict[Digest, Descriptor]] = {}
    origins: dict[tuple[Repository, Digest], Repository] = {}
    for job, found in per_job:
        for item in found:
            digest = item.source.digest
            if digest is None:  # pragma: no cover - found manifests are digest references
                continue
            key = (job.destination, digest)
            tags = (item.tag,) if item.tag else ()
            known = jobs.get(key)
            if known is None:
                jobs[key] = Job(
                    source=item.source, destination=job.destination, tags=tags,
                    subject=item.subject,
                )
            elif item.tag and item.tag not in known.tags:
                jobs[key] = dataclasses.replace(known, tags=(*known.tags, item.tag))
            if item.manifest is not None:
                where = (job.destination, item.subject)
                listings.setdefault(where, {}).setdefault(
                    digest, listing_descriptor(item.manifest)
                )
                origins.setdefault(where, item.source.repo)
    result = Attachments(
        indexes=[
            ReferrersIndex(repository=repo, subject=subject, referrers=tuple(listed.values()))
            for (repo, subject), listed in listings.items()
        ]
    )
    if package:
        for index in result.indexes:
            manifest = merge_index(None, index.referrers, name=str(index.reference))
            if manifest is None:  # pragma: no cover - listings are never empty
                continue
            result.manifests[manifest.digest] = manifest
            origin = origins[(index.repository, index.subject)]
            jobs.setdefault(
                (index.repository, manifest.digest),
                Job(
                    source=Reference.from_repo(origin, digest=manifest.digest),
                    destination=index.repository,
                    tags=(referrers_tag(index.subject),),
                ),
            )
        result.indexes = []
    result.jobs = list(jobs.values())
    return result


def with_attachments(
    jobs: Sequence[Job], extras: Sequence[Job], sink: ProgressSink | None = None
) -> list[Job]:
    """
    The run's jobs: `jobs` as they are, then `extras`. An extra for an image some job
    already lands at that destination adds its tags to that job; an extra tag that
    another image already has at that destination is left out, with a notice (the first
    image named keeps a tag), and so is an extra left with none of its tags.
    """
    merged = list(jobs)
    position: dict[Key, int] = {}
    owners: dict[tuple[Repository, str], Digest] = {}
    for index, job in enumerate(merged):
        position.setdefault((job.destination, job.digest), index)
        for tag in job.tags:
            owners.setdefault((job.destination, tag), job.digest)
    for extra in extras:
        tags = []
        for tag in extra.tags:
            owner = owners.setdefault((extra.destination, tag), extra.digest)
            if owner == extra.digest:
                tags.append(tag)
            elif sink is not None:
                sink.emit(Notice(
                    f"{extra.destination}:{tag} is {owner}, not {extra.digest}: "
                    f"{extra.source} is left out"
                ))
        if extra.tags and not tags:
            continue
        key = (extra.destination, extra.digest)
        if key in position:
            current = merged[position[key]]
            added = tuple(t for t in tags if t not in current.tags)
            merged[position[key]] = dataclasses.replace(current, tags=(*current.tags, *added))
        else:
            position[key] = len(merged)
            merged.append(dataclasses.replace(extra, tags=tuple(tags)))
    return merged


def describe(job: Job) -> str:
    """What an attached job is, for log lines: `signature of sha256:1234abcd5678`."""
    kind, subject = "referrer", job.subject
    for tag in job.tags:
        parsed = attached_to(tag)
        if parsed is not None:
            kind = _COSIGN_KINDS.get(parsed[1] or "", "referrers index")
            subject = subject or parsed[0]
            break
    if subject is None:
        return kind
    return f"{kind} of {subject.algorithm}:{subject.short}"


def _bind(function: Callable[..., Awaitable[_T]], *args: Any) -> Callable[[], Awaitable[_T]]:
    async def call() -> _T:
        return await function(*args)

    return call


async def _gather(calls: Sequence[Callable[[], Awaitable[_T]]]) -> list[_T]:
    """Run `calls` concurrently; their results in order."""
    results: dict[int, _T] = {}

    async def run(position: int, call: Callable[[], Awaitable[_T]]) -> None:
        results[position] = await call()

    async with anyio.create_task_group() as tg:
        for position, call in enumerate(calls):
            tg.start_soon(run, position, call)
    return [results[position] for position in range(len(calls))]
