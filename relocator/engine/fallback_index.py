"""
The fallback referrers index: on a registry without the referrers API, the index tagged
`sha256-<hex>` that lists what refers to a manifest (OCI distribution spec 1.1). After
a copy, `write_referrers_indexes` merges into it the referrers that landed, keeping
whatever it listed already.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from relocator.errors import ManifestError, NotFound, RelocatorError
from relocator.oci import (
    Descriptor,
    Digest,
    Manifest,
    Reference,
    Repository,
    mediatypes,
    strictjson,
)
from relocator.store import Store
from relocator.store.base import Referrers, referrers_tag

from .events import ImageFailed, ProgressSink
from .execute import put_tag
from .groups import first_error
from .report import ImageFailure, Report

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReferrersIndex:
    """What the fallback referrers index of one subject, at one destination, must list."""

    #: The destination repository.
    repository: Repository
    #: The manifest the referrers are about.
    subject: Digest
    #: The referrers, as the index lists them (see `listing_descriptor`).
    referrers: tuple[Descriptor, ...]

    @property
    def reference(self) -> Reference:
        """Where the index lives: `<repository>:sha256-<hex>`."""
        return Reference.from_repo(self.repository, tag=referrers_tag(self.subject))



def listing_descriptor(manifest: Manifest) -> Descriptor:
    """
    How a referrers listing names `manifest` (OCI distribution spec 1.1): its media type,
    digest and size, its `artifactType` (the config's media type when it has none), and
    its annotations.
    """
    artifact_type = manifest.artifact_type
    if artifact_type is None and manifest.config is not None:
        artifact_type = manifest.config.media_type
    return Descriptor(
        media_type=manifest.media_type,
        digest=manifest.digest,
        size=len(manifest.raw),
        artifact_type=artifact_type,
        annotations={
            k: v for k, v in manifest.annotations.items()
            if isinstance(k, str) and isinstance(v, str)
        },
    )


def merge_index(
    existing: Manifest | None, referrers: Sequence[Descriptor], *, name: str
) -> Manifest | None:
    """
    The fallback index listing `referrers` besides everything `existing` lists.

    Entries of `existing` are kept as they are (and in order), as are its other fields;
    a referrer it already lists (by digest) is not added again. None when there is
    nothing to add, so an index that is complete is never rewritten.

    Args:
        existing: The index now at the tag; None if there is none.
        referrers: What it must list.
        name: The tag's reference, for messages.

    Raises:
        ManifestError: `existing` is not an OCI index (it is left alone).
    """
    document: dict[str, Any]
    if existing is None:
        document = {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": []}
        listed: set[Digest] = set()
    else:
        if existing.media_type != mediatypes.OCI_INDEX:
            raise ManifestError(
                f"{name} is a {existing.media_type}, not the OCI index the referrers tag "
                "scheme keeps there; it is left as it is"
            )
        document = strictjson.loads(existing.raw)
        document.setdefault("manifests", [])
        listed = {desc.digest for desc in existing.manifests}
    added = []
    for desc in referrers:
        if desc.digest not in listed:
            listed.add(desc.digest)
            added.append(desc.to_json())
    if not added:
        return None
    document["manifests"] = [*document["manifests"], *added]
    raw = json.dumps(document, separators=(",", ":")).encode()
    return Manifest.parse(raw, content_type=mediatypes.OCI_INDEX, name=name)


async def write_referrers_indexes(
    indexes: Sequence[ReferrersIndex],
    destination: Store,
    report: Report,
    *,
    sink: ProgressSink,
    keep_going: bool = False,
) -> None:
    """
    Merge the fallback referrers indexes into the destination repositories that have no
    referrers API (probed once per repository; one that has it indexes the referrers
    itself). Only referrers that are at the destination after the run (`report.images`)
    are listed; an index already listing them all is left untouched.

    The merge is a read-modify-write of the tag, as crane and regctl do: two runs
    writing the same index at the same moment can lose one another's additions (the
    distribution API has no conditional PUT of manifests).

    Raises:
        RelocatorError: Writing an index failed (without `keep_going`; with it, the
            failure goes to `report.failures`).
    """
    if not isinstance(destination, Referrers):
        return
    landed = {(image.destination.repo, image.destination.digest) for image in report.images}
    wanted: dict[Repository, dict[Digest, dict[Digest, Descriptor]]] = {}
    for index in indexes:
        for desc in index.referrers:
            if (index.repository, desc.digest) in landed:
                wanted.setdefault(index.repository, {}).setdefault(
                    index.subject, {}
                ).setdefault(desc.digest, desc)
    writer = _IndexWriter(destination, report, sink, keep_going)
    try:
        async with anyio.create_task_group() as tg:
            for repo, subjects in wanted.items():
                tg.start_soon(writer.repository, repo, subjects)
    except BaseExceptionGroup as group:
        raise first_error(group) from None


class _IndexWriter:
    def __init__(
        self, destination: Store, report: Report, sink: ProgressSink, keep_going: bool
    ) -> None:
        self._dst = destination
        self._report = report
        self._sink = sink
        self._keep_going = keep_going

    async def repository(
        self, repo: Repository, subjects: dict[Digest, dict[Digest, Descriptor]]
    ) -> None:
        first = next(iter(subjects))
        probe = ReferrersIndex(repository=repo, subject=first, referrers=())
        try:
            api = await self._api(repo, first)
        except RelocatorError as exc:
            self._fail(probe.reference, exc)
            return
        if api:
            log.debug("%s has the referrers API: no fallback indexes to write", repo)
            return
        async with anyio.create_task_group() as tg:
            for subject, referrers in subjects.items():
                index = ReferrersIndex(
                    repository=repo, subject=subject, referrers=tuple(referrers.values())
                )
                tg.start_soon(self._one, index)

    async def _api(self, repo: Repository, digest: Digest) -> bool:
        if not isinstance(self._dst, Referrers):  # pragma: no cover - checked by the caller
            return False
        return await self._dst.referrers_api(repo, digest) is not None

    async def _one(self, index: ReferrersIndex) -> None:
        ref = index.reference
        try:
            try:
                existing: Manifest | None = await self._dst.manifest_get(ref)
            except NotFound:
                existing = None
            merged = merge_index(existing, index.referrers, name=str(ref))
            if merged is None:
                return
            await put_tag(self._dst, ref, merged, self._sink, what="referrers index")
        except RelocatorError as exc:
            self._fail(ref, exc)
            return
        self._report.manifests_pushed += 1

    def _fail(self, ref: Reference, error: RelocatorError) -> None:
        if not self._keep_going:
            raise error
        self._report.failures.append(ImageFailure(source=ref, error=str(error)))
        self._sink.emit(ImageFailed(str(ref), str(error)))
