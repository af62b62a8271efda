"""
Carrying out a plan: blobs first, manifests once what they reference has landed.

Every blob and manifest is a task; a manifest task waits for the events of its blobs
and children, so an image is pushed as soon as it is complete rather than after the
whole run, and nothing is ever pushed before what it references. Blob tasks start
largest first and queue on one global limit, then hold one slot of the source host
and one of the destination host for the whole transfer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterator
from contextlib import AsyncExitStack, aclosing, asynccontextmanager
from dataclasses import dataclass

import anyio

from relocator.errors import DigestNotKept, RelocatorError
from relocator.oci import Descriptor, Digest, Manifest, Reference, Repository
from relocator.store import BlobMounter, HostBound, Store, Untrusted
from relocator.transport import Hosts, RetryPolicy
from relocator.transport.limits import HostLimits

from .events import (
    BlobDone,
    BlobProgress,
    BlobStarted,
    ImageDone,
    ImageFailed,
    ManifestPushed,
    ProgressSink,
    Retrying,
)
from .graph import BlobNode, Job, Key, ManifestNode, Plan
from .report import ImageFailure, ImageResult, Report
from .singleflight import SingleFlight

log = logging.getLogger(__name__)

# Bytes between two progress events of one blob: frequent enough for smooth bars,
# rare enough that a 10 GB blob does not flood the sink (at most one event per 256 KiB).
_PROGRESS_STEP = 256 * 1024
# Manifests waiting for what they reference at once. Far more than pushes run at once
# (the hosts' limits bound those), so that an image whose blobs have landed does not
# wait behind images still moving theirs.
_MANIFEST_WORKERS = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class CopyOptions:
    """How a plan is carried out."""

    #: Blob transfers in flight across all hosts (memory and file descriptors bound
    #: it). None: what the stores' transport derives (`HostLimits.blobs_in_flight`).
    max_blobs_in_flight: int | None = None
    #: How one blob transfer is retried, all levels together (see
    #: `relocator.transport.retry`). None: the stores' transport policy.
    retry: RetryPolicy | None = None
    #: Finish every image that can be finished when one fails; failures end up in
    #: `Report.failures` instead of stopping the run.
    keep_going: bool = False
    #: Push no manifest before every blob of the run has landed. Always on for a source
    #: that declares itself `Untrusted` (a tarball), whose blobs are verified only as
    #: they stream: one tampered blob then leaves no image of the run behind, not just
    #: its own.
    blobs_first: bool = False


class Executor:
    """Runs one `Plan` from `source` to `destination`."""

    def __init__(
        self,
        plan: Plan,
        source: Store,
        destination: Store,
        options: CopyOptions,
        sink: ProgressSink,
    ) -> None:
        self._plan = plan
        self._src = source
        self._dst = destination
        self._options = options
        self._sink = sink
        # The source decides, not the caller: an untrusted source gets blobs-first
        # whoever drives the engine.
        self._blobs_first = options.blobs_first or (
            isinstance(source, Untrusted) and source.untrusted
        )
        # Host slots, blobs in flight and retries come from the stores' transport (the
        # `HostBound` capability): the caller need not know them.
        hosts = [s.hosts for s in (source, destination) if isinstance(s, HostBound)]
        limits = hosts[0].limits if hosts else HostLimits()
        self._blobs_in_flight = options.max_blobs_in_flight or limits.blobs_in_flight
        self._retry = options.retry or (hosts[0].retry if hosts else RetryPolicy())
        self._blob_slots = anyio.CapacityLimiter(self._blobs_in_flight)
        # Blob tasks still running, and the event set when none is (`blobs_first`).
        self._blobs_running = 0
        self._blobs_done = anyio.Event()
        # What has landed at the destination (blobs and manifests, by destination
        # repository and digest), each landed once and awaited by what needs it.
        self._landed: SingleFlight[Key, None] = SingleFlight()
        self._roots: dict[Key, Job] = {}
        for job in plan.jobs:
            self._roots.setdefault((job.destination, job.digest), job)
        self.report = Report()

    async def run(self) -> Report:
        """Move everything; raises the first failure after cancelling the rest."""
        started = time.monotonic()
        plan = self._plan
        for blob in plan.blobs.values():
            for repo in blob.present:
                self._landed.settle((repo, blob.desc.digest), None)
                self.report.blobs_present += 1
                self.report.bytes_present += blob.desc.size
                self._sink.emit(BlobDone(str(blob.desc.digest), blob.desc.size, "present"))
        for key in plan.manifests_present:
            self._landed.settle(key, None)
        self.report.manifests_present = len(plan.manifests_present)
        excluded = {d.digest: d for _, d in plan.excluded}
        self.report.blobs_excluded = len(excluded)
        for desc in excluded.values():
            self._sink.emit(BlobDone(str(desc.digest), desc.size, "excluded"))
        async with anyio.create_task_group() as tg:
            to_move = plan.blobs_to_move()
            self._blobs_running = len(to_move)
            if not to_move:
                self._blobs_done.set()
            # A fixed set of workers, not a task per blob or manifest: a task costs about
            # 4 KiB, and a plan can hold hundreds of thousands of them. Blob workers take
            # the largest first; manifest workers take them bottom-up, so a worker only
            # ever waits for what earlier (or blob) workers are landing.
            blobs = iter(to_move)
            for n in range(min(self._blobs_in_flight, len(to_move))):
                tg.start_soon(self._blob_worker, blobs, name=f"blob worker {n}")
            manifests = iter(plan.manifests.values())
            for n in range(min(_MANIFEST_WORKERS, len(plan.manifests))):
                tg.start_soon(self._manifest_worker, manifests, name=f"manifest worker {n}")
            for job in plan.jobs:
                if job in plan.failed:
                    self._fail_job(job, plan.failed[job])
                else:
                    tg.start_soon(self._job, job, name=f"image {job.source}")
        self.report.seconds = time.monotonic() - started
        return self.report

    def _fail_job(self, job: Job, error: RelocatorError) -> None:
        if not self._options.keep_going:
            raise error
        self.report.failures.append(ImageFailure(source=job.source, error=str(error)))
        self._sink.emit(ImageFailed(str(job.source), str(error)))

    async def _blob_worker(self, blobs: Iterator[BlobNode]) -> None:
        for blob in blobs:
            await self._blob(blob)

    async def _manifest_worker(self, nodes: Iterator[ManifestNode]) -> None:
        for node in nodes:
            await self._manifest(node)

    async def _blob(self, blob: BlobNode) -> None:
        # Not in a `finally`: a blob that failed the run (without keep-going) must not
        # count as done, or a blobs-first manifest could be released by the failure
        # itself and pushed before the cancellation reaches it.
        await self._blob_landings(blob)
        self._blobs_running -= 1
        if not self._blobs_running:
            self._blobs_done.set()

    async def _blob_landings(self, blob: BlobNode) -> None:
        async with self._blob_slots:
            have = [repo for repo in blob.destinations if repo in blob.present]
            failed: list[RelocatorError] = []
            for repo in blob.missing:

                async def land(repo: Repository = repo) -> None:
                    if failed:
                        # The blob could not be landed once: the other repositories
                        # fail with it rather than try again.
                        raise failed[0]
                    await self._land_blob(blob, repo, have)

                try:
                    await self._landed.run((repo, blob.desc.digest), land)
                except RelocatorError as exc:
                    if not self._options.keep_going:
                        raise
                    # Recorded for what needs it (keep-going).
                    failed.append(exc)
                    continue
                have.append(repo)

    async def _land_blob(self, blob: BlobNode, repo: Repository, have: list[Repository]) -> None:
        desc = blob.desc
        if isinstance(self._dst, BlobMounter):
            # Another destination repository of this run, or the source itself when it
            # is the same registry: a mount moves no bytes.
            candidates = [r for r in have if r.registry == repo.registry and r != repo]
            if self._src is self._dst:
                candidates += [
                    r for r in blob.sources if r.registry == repo.registry and r != repo
                ]
            for other in candidates:
                if await self._dst.blob_mount(other, repo, desc):
                    self.report.blobs_mounted += 1
                    self.report.bytes_mounted += desc.size
                    self._sink.emit(BlobDone(str(desc.digest), desc.size, "mounted"))
                    return
            # Not asked at planning (the repository looked new): a mount from the
            # repository itself answers "there already" (an earlier run that stopped)
            # or opens the upload, one request either way. A declined mount above has
            # opened the upload already; the blob is then sent without asking.
            if not candidates and repo in blob.unchecked and await self._dst.blob_mount(
                repo, repo, desc
            ):
                self.report.blobs_present += 1
                self.report.bytes_present += desc.size
                self._sink.emit(BlobDone(str(desc.digest), desc.size, "present"))
                return
        await self._copy(blob, repo)

    async def _copy(self, blob: BlobNode, repo: Repository) -> None:
        desc = blob.desc
        source = blob.sources[0]
        # One operation: the requests and resumes inside spend the same attempts as the
        # whole-transfer retries here, so their counts add up instead of multiplying.
        with self._retry.operation() as attempts:
            while True:
                try:
                    async with self._hold_hosts(source, repo):
                        self._sink.emit(BlobStarted(str(desc.digest), desc.size, str(repo)))
                        async with (
                            self._src.blob_open(source, desc) as chunks,
                            aclosing(self._counted(chunks, desc)) as counted,
                        ):
                            await self._dst.blob_put(repo, desc, counted)
                    break
                except RelocatorError as exc:
                    delay = attempts.retry(exc)
                    self.report.retries += 1
                    self._sink.emit(Retrying(
                        f"copying blob {desc.digest.short} to {repo}", attempts.spent,
                        str(exc), delay,
                    ))
                    await anyio.sleep(delay)
        self.report.blobs_copied += 1
        self.report.bytes_copied += desc.size
        self._sink.emit(BlobDone(str(desc.digest), desc.size, "copied"))

    @asynccontextmanager
    async def _hold_hosts(
        self, source: Repository, destination: Repository
    ) -> AsyncIterator[None]:
        """
        Hold a slot of the source's host and one of the destination's for the block,
        each from the transport that limits it (one call per transport, so that its
        slots are taken in its sorted host order).
        """
        wanted: dict[int, tuple[Hosts, list[str]]] = {}
        for store, repo in ((self._src, source), (self._dst, destination)):
            if isinstance(store, HostBound):
                hosts = store.hosts
                wanted.setdefault(id(hosts), (hosts, []))[1].append(store.host_of(repo))
        async with AsyncExitStack() as stack:
            for key in sorted(wanted):
                hosts, names = wanted[key]
                await stack.enter_async_context(hosts.hold(names))
            yield

    async def _counted(
        self, chunks: AsyncIterable[bytes], desc: Descriptor
    ) -> AsyncGenerator[bytes, None]:
        done = 0
        reported = 0
        digest = str(desc.digest)
        emit = self._sink.emit
        async for chunk in chunks:
            done += len(chunk)
            if done - reported >= _PROGRESS_STEP or done == desc.size:
                reported = done
                emit(BlobProgress(digest, done, desc.size))
            yield chunk

    async def _manifest(self, node: ManifestNode) -> None:
        try:
            await self._landed.run(node.key, lambda: self._push_manifest(node))
        except RelocatorError:
            if not self._options.keep_going:
                raise
            # Recorded for the parents and the job waiting for it.

    async def _push_manifest(self, node: ManifestNode) -> None:
        repo = node.destination.repo
        needs = [(repo, digest) for digest in node.blobs] + node.manifests
        failed: RelocatorError | None = None
        for key in needs:
            try:
                await self._landed.wait(key)
            except RelocatorError as exc:
                failed = failed or exc
        if self._blobs_first:
            await self._blobs_done.wait()
        if failed is not None:
            # Never push a manifest whose blobs or children did not land.
            raise failed
        job = self._roots.get(node.key)
        if job is not None and job.tags:
            # Pushed by tag, not digest: some registries (ECR) refuse digest pushes,
            # and a tag protects the image from garbage collection.
            await self._push_tag(job, job.tags[0], node.manifest)
        else:
            await self._dst.manifest_put(node.destination, node.manifest)
            self._sink.emit(ManifestPushed(str(node.destination)))
        self.report.manifests_pushed += 1

    async def _job(self, job: Job) -> None:
        key = (job.destination, job.digest)
        try:
            await self._landed.wait(key)
            await self._finish_job(job, key)
        except RelocatorError as exc:
            self._fail_job(job, exc)

    async def _finish_job(self, job: Job, key: Key) -> None:
        present = job in self._plan.present
        tags = job.tags if present else job.tags[1:]
        # Tags the plan already saw pointing at the image cost no second look.
        tags = tuple(t for t in tags if (job.destination, t) not in self._plan.tags_present)
        manifest: Manifest | None = None
        for tag in tags:
            ref = Reference.from_repo(job.destination, tag=tag)
            if await self._dst.manifest_exists(ref) == job.digest:
                continue
            if manifest is None:
                node = self._plan.manifests.get(key)
                manifest = node.manifest if node else await self._dst.manifest_get(job.target)
            await self._push_tag(job, tag, manifest)
        self.report.images.append(
            ImageResult(source=job.source, destination=job.target,
                        how="present" if present else "copied")
        )
        self._sink.emit(
            ImageDone(str(job.source), str(job.target), "present" if present else "copied")
        )

    async def _push_tag(self, job: Job, tag: str, manifest: Manifest) -> None:
        ref = Reference.from_repo(job.destination, tag=tag)
        await put_tag(self._dst, ref, manifest, self._sink, what="imported image")


async def put_tag(
    store: Store, ref: Reference, manifest: Manifest, sink: ProgressSink, *, what: str
) -> None:
    """
    Push `manifest` under the tag `ref` names, then make sure the tag points at it: by
    the digest the push's answer names, or else by reading the tag back.

    Raises:
        DigestNotKept: The tag points at another digest than the one pushed: a registry
            (or a proxy) that stored something else must not go unnoticed.
    """
    confirmed = await store.manifest_put(ref, manifest)
    sink.emit(ManifestPushed(str(ref)))
    if confirmed == manifest.digest:
        # The registry's answer to the push named the digest it stored: reading the
        # tag back would ask it the same question again.
        return
    actual = await store.manifest_exists(ref)
    if actual != manifest.digest:
        raise DigestNotKept(
            f"Expected {what} '{ref}' to have digest '{manifest.digest}' but was '{actual}'",
            host=ref.registry,
        )


#: Names of the schemes of the tag each landed image gets (`--destination-tags`).
TAG_SCHEMES = ("relocator", "kbld", "imgpkg")


def image_tag(digest: Digest, scheme: str = "relocator") -> str:
    """
    The tag relocator gives each image it lands: `sha256-<hex>.relocator`, or kbld's
    `kbld-sha256-<hex>` or imgpkg's `sha256-<hex>.imgpkg`, so that retention rules
    written for those tools keep matching.

    Never the bare `sha256-<hex>`, which the OCI referrers tag scheme owns. A sha512
    digest makes every scheme's tag longer than the 128 characters a tag may have; the
    store refuses it rather than land the image under a truncated, ambiguous tag.
    """
    if scheme == "kbld":
        return f"kbld-{digest.tag}"
    return f"{digest.tag}.{scheme}"
