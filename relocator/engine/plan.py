"""
Planning: every manifest and blob a run must move, deduplicated into a `Plan` (the
data, in `relocator.engine.graph`).

Planning walks each source image (indexes recursively, every platform, the subjects of
artifacts), asking the destination first so that anything it already has is skipped
whole: a manifest present at the destination implies its blobs and children are there
too, because nothing pushes a manifest before what it references.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Sequence

import anyio

from relocator.errors import ManifestError, NotFound, RelocatorError
from relocator.oci import Descriptor, Digest, Manifest, Reference, Repository
from relocator.store import BlobMounter, Store, TagLister

from .graph import BlobNode, Job, Key, ManifestNode, Plan
from .groups import first_error
from .limits import MANIFEST_OVERHEAD, Limits
from .order import after_subjects, bottom_up
from .singleflight import SingleFlight

log = logging.getLogger(__name__)

# Indexes nest (an index of indexes of images); deeper than this is not a real image.
MAX_DEPTH = 8
# Blob checks in flight at most, across hosts (each host's own limit is lower).
_CHECK_WORKERS = 64
# Manifest fetches in flight at most while planning, whatever the hosts' (adaptive)
# limits: each may bring a manifest of up to 4 MiB before the plan's byte cap counts it,
# so this, not the hosts, bounds the memory a fan-out index can take.
_MANIFEST_FETCHES = 8
# From this many tagged images into one destination repository, its tag list (one
# request per thousand tags) answers "absent" for the tags it lacks, instead of a HEAD
# of each; below, the HEADs cost less than a listing that may find everything there.
_LIST_TAGS_FROM = 8
# A tag list longer than this many pages per image it would spare a HEAD is not worth
# reading to the end: the HEADs are asked instead.
_TAGS_PER_IMAGE = 1000

class Planner:
    """
    Walks source images into a `Plan`, asking the destination what it has.

    Args:
        source: Where the images are read.
        destination: Where they go.
        include_nondistributable: Copy foreign / non-distributable layers too.
        skip_present: Ask the destination first (off for a fresh tarball).
        keep_going: Record a job that fails to plan in `Plan.failed` and plan the
            others, instead of failing the whole plan.
        known: Manifests already fetched (by digest), not fetched again.
        limits: Caps on index entries, layers and the manifest bytes the plan holds.
        check_on_landing: Leave blobs of destination repositories that look new (none
            of the run's manifests is there) unasked, for the executor to find out as
            they land (`BlobNode.unchecked`); only for a destination that mounts
            (`BlobMounter`). Off for a dry run, whose plan must say what is there.
    """

    def __init__(
        self,
        source: Store,
        destination: Store,
        *,
        include_nondistributable: bool = False,
        skip_present: bool = True,
        keep_going: bool = False,
        known: dict[Digest, Manifest] | None = None,
        limits: Limits | None = None,
        check_on_landing: bool = False,
    ) -> None:
        self._src = source
        self._limits = limits or Limits()
        # Bytes of the manifests the plan holds (each counted once per destination).
        self._held = 0
        self._known = known or {}
        self._keep_going = keep_going
        self._dst = destination
        self._include_nd = include_nondistributable
        self._skip_present = skip_present
        self._check_on_landing = check_on_landing and isinstance(destination, BlobMounter)
        # Destination repositories where some manifest of the run already is: their
        # blobs are asked about at planning; the others look new.
        self._populated: set[Repository] = set()
        self._walks: SingleFlight[Key, None] = SingleFlight()
        self._fetches = anyio.CapacityLimiter(_MANIFEST_FETCHES)
        self._plan = Plan(jobs=[])
        # The tags each listed destination repository has (see `_list_tags`).
        self._listed: dict[Repository, frozenset[str]] = {}

    async def plan(self, jobs: Sequence[Job]) -> Plan:
        """Walk every job (concurrently) and check which blobs the destination has."""
        self._plan = Plan(jobs=list(dict.fromkeys(jobs)))
        await self._list_tags()
        async with anyio.create_task_group() as tg:
            for job in self._plan.jobs:
                tg.start_soon(self._plan_job, job)
        after_subjects(self._plan)
        self._plan.manifests = bottom_up(self._plan)
        # A few workers rather than a task per blob (a task costs about 4 KiB, and a plan
        # can name hundreds of thousands of blobs); the hosts' limits bound the requests.
        checks = ((blob, repo) for blob in self._plan.blobs.values() for repo in blob.destinations)
        async with anyio.create_task_group() as tg:
            for _ in range(_CHECK_WORKERS):
                tg.start_soon(self._check_blobs, checks)
        return self._plan

    async def _plan_job(self, job: Job) -> None:
        try:
            if self._skip_present and await self._present(job):
                self._plan.present.add(job)
                self._plan.manifests_present.add((job.destination, job.digest))
                self._populated.add(job.destination)
                return
            await self._walk(job.source, job.destination, depth=0, root=True)
        except (RelocatorError, BaseExceptionGroup) as exc:
            if not self._keep_going:
                raise
            error = first_error(exc) if isinstance(exc, BaseExceptionGroup) else exc
            if not isinstance(error, RelocatorError):
                raise
            self._plan.failed[job] = error

    async def _list_tags(self) -> None:
        """
        List the tags of each destination repository many tagged images go to: one
        request per page, against a HEAD per image, for the tags a first run lacks.
        A repository that cannot be listed (no such API, no permission, too many tags
        for what the listing would spare) is asked tag by tag instead.
        """
        if not self._skip_present or not isinstance(self._dst, TagLister):
            return
        lister = self._dst
        tagged = Counter(job.destination for job in self._plan.jobs if job.tags)
        wanted = [repo for repo, n in tagged.items() if n >= _LIST_TAGS_FROM]

        async def listing(repo: Repository) -> None:
            pages = 1 + tagged[repo] // _TAGS_PER_IMAGE
            try:
                self._listed[repo] = frozenset((await lister.tags(repo, pages=pages)).tags)
            except NotFound:
                self._listed[repo] = frozenset()
            except RelocatorError as exc:
                log.debug("asking %s tag by tag: %s", repo, exc)

        async with anyio.create_task_group() as tg:
            for repo in wanted:
                tg.start_soon(listing, repo)

    async def _present(self, job: Job) -> bool:
        """
        Whether the destination has the job's image: one HEAD of its first tag when it
        has tags, which on a re-run also confirms the tag (the common case: a no-op costs
        one request per image), else one HEAD by digest.
        """
        if not job.tags:
            return await self._dst.manifest_exists(job.target) is not None
        tag = job.tags[0]
        listed = self._listed.get(job.destination)
        if listed is not None and tag not in listed:
            return False
        found = await self._dst.manifest_exists(Reference.from_repo(job.destination, tag=tag))
        if found == job.digest:
            self._plan.tags_present.add((job.destination, tag))
            return True
        if found is None:
            # No tag (here or in the listing): the image is taken as absent without a
            # second request. Should it be
            # there by digest after all (tagged otherwise), the walk finds its children
            # and blobs present and the push re-tags it: correct, at the cost of a walk.
            return False
        # The tag points elsewhere (the image moved on at the source): the new image
        # may still be there, under another tag.
        self._populated.add(job.destination)
        return await self._dst.manifest_exists(job.target) is not None

    async def _walk(
        self, source: Reference, destination: Repository, *, depth: int, root: bool = False
    ) -> None:
        digest = source.digest
        if digest is None:  # pragma: no cover - callers only pass digest references
            raise ValueError(f"{source} has no digest")
        key = (destination, digest)

        async def walk() -> None:
            try:
                await self._walk_new(source, destination, key, depth, root)
            except BaseExceptionGroup as group:
                # Every image sharing this manifest fails with the cause, not the group.
                error = first_error(group)
                if isinstance(error, RelocatorError):
                    raise error from None
                raise

        # Each manifest is walked once per destination, however many images share it;
        # a walk that failed fails those waiting for it too, not a node never made.
        await self._walks.run(key, walk)

    async def _walk_new(
        self,
        source: Reference,
        destination: Repository,
        key: Key,
        depth: int,
        root: bool,
    ) -> None:
        target = Reference.from_repo(destination, digest=key[1])
        if depth > MAX_DEPTH:
            raise ManifestError(f"{source}: indexes nested deeper than {MAX_DEPTH} levels")
        if not root and self._skip_present and await self._dst.manifest_exists(target):
            self._plan.manifests_present.add(key)
            self._populated.add(destination)
            return
        manifest = self._known.get(key[1]) or await self._fetch(source)
        # Before any child is walked: a hostile index must not fan out first.
        self._limits.check(manifest, str(source))
        self._held += len(manifest.raw) + MANIFEST_OVERHEAD
        self._limits.check_plan_bytes(self._held, str(source))
        node = ManifestNode(source=source, destination=target, manifest=manifest)
        children = [(child, False) for child in manifest.manifests]
        if manifest.subject is not None:
            children.append((manifest.subject, True))
        async with anyio.create_task_group() as tg:
            for child, is_subject in children:
                tg.start_soon(self._walk_child, node, child, is_subject, depth + 1)
        # Children in manifest order whatever order their walks finished in.
        found = set(node.manifests)
        node.manifests = [
            (destination, child.digest)
            for child, _ in children
            if (destination, child.digest) in found
        ]
        for desc in manifest.blobs:
            if not desc.distributable and not self._include_nd:
                self._plan.excluded.append((source, desc))
                continue
            blob = self._plan.blobs.get(desc.digest)
            if blob is None:
                blob = self._plan.blobs[desc.digest] = BlobNode(desc=desc)
            elif blob.desc.size != desc.size:
                raise ManifestError(
                    f"{source}: blob {desc.digest} has size {desc.size} here but "
                    f"{blob.desc.size} in another manifest"
                )
            if source.repo not in blob.sources:
                blob.sources.append(source.repo)
            if destination not in blob.destinations:
                blob.destinations.append(destination)
            node.blobs.append(desc.digest)
        self._plan.manifests[key] = node

    async def _fetch(self, source: Reference) -> Manifest:
        async with self._fetches:
            return await self._src.manifest_get(source)

    async def _walk_child(
        self, parent: ManifestNode, child: Descriptor, is_subject: bool, depth: int
    ) -> None:
        destination = parent.destination.repo
        try:
            await self._walk(parent.source.with_digest(child.digest), destination, depth=depth)
        except NotFound:
            if not is_subject:
                raise
            # OCI 1.1 lets an artifact point at a subject that is not (or no longer) in
            # the repository; the artifact is still copied, without it.
            log.info("subject %s of %s is missing at the source", child.digest, parent.source)
            return
        parent.manifests.append((destination, child.digest))

    async def _check_blobs(self, checks: Iterator[tuple[BlobNode, Repository]]) -> None:
        for blob, repo in checks:
            if not self._skip_present:
                continue
            if self._check_on_landing and repo not in self._populated:
                blob.unchecked.add(repo)
            elif await self._dst.blob_exists(repo, blob.desc):
                blob.present.add(repo)


async def make_plan(
    jobs: Sequence[Job],
    source: Store,
    destination: Store,
    *,
    include_nondistributable: bool = False,
    skip_present: bool = True,
    keep_going: bool = False,
    known: dict[Digest, Manifest] | None = None,
    limits: Limits | None = None,
    check_on_landing: bool = False,
) -> Plan:
    """
    Plan copying `jobs` from `source` to `destination` (the arguments are `Planner`'s).

    Raises:
        NotFound: A source image does not exist.
        ManifestError: A manifest is unsupported, ambiguous or malformed, or over one of
            the `limits`.
    """
    planner = Planner(
        source,
        destination,
        include_nondistributable=include_nondistributable,
        skip_present=skip_present,
        keep_going=keep_going,
        known=known,
        limits=limits,
        check_on_landing=check_on_landing,
    )
    return await planner.plan(jobs)
