"""
The plan file: walk the source once, run the plan on as many workers as needed.

A plan file holds what planning read from the source: every job (source by digest,
destination, tags), every manifest as its raw bytes, and every blob with its size,
plus a fingerprint of what the plan was made from (the inputs and the options that
shape it). A worker reading it rebuilds the same `Plan` without a single manifest
request to the source, so N workers cost the source one walk, not N (registries such
as Docker Hub count manifest requests).

The file is plain JSON, versioned, and read like every outside value: each digest,
size, media type and reference is checked, and each manifest's bytes must hash to its
digest, so a plan file cannot make a worker push anything the source did not serve.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import AsyncIterable, AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relocator.errors import InputError, NotFound, RelocatorError
from relocator.oci import Descriptor, Digest, Manifest, Reference, Repository, strictjson
from relocator.outfiles import write_atomically
from relocator.store import Store

from .fallback_index import ReferrersIndex
from .graph import Job, Plan
from .limits import Limits
from .plan import make_plan
from .tags import check_tags

#: The format's name and version, the first key of every plan file.
FORMAT = "relocator-plan"
VERSION = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanFile:
    """A plan file's content, validated."""

    #: Where it was read from (named in every error about it).
    path: Path
    fingerprint: str
    include_nondistributable: bool
    jobs: tuple[Job, ...]
    #: Every manifest the plan holds, by digest (each checked against its bytes).
    manifests: Mapping[Digest, Manifest]
    #: Every blob the plan moves, with its size.
    blobs: Mapping[Digest, int]
    #: The fallback referrers indexes to merge at the destination (`run_shard`).
    referrers: tuple[ReferrersIndex, ...] = ()


def fingerprint(made_from: Mapping[str, Any]) -> str:
    """
    The fingerprint of what a plan is made from: a digest of `made_from` (plain JSON
    values: the inputs, or digests of their contents, and the options that shape the
    plan) in a canonical form, so equal inputs give equal fingerprints on any machine.
    """
    text = json.dumps(made_from, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return f"sha256:{hashlib.sha256(text.encode()).hexdigest()}"


def write_plan(
    path: str | os.PathLike[str],
    plan: Plan,
    *,
    made_from: Mapping[str, Any],
    include_nondistributable: bool = False,
    referrers: Sequence[ReferrersIndex] = (),
) -> None:
    """
    Write `plan` to `path` atomically (mode 0600), with the `referrers` indexes found
    while planning. Jobs that failed to plan (with keep-going) are left out: a worker
    cannot do more with them than the planner did.

    Raises:
        ValueError: `plan` was made against the destination (it skipped what is there):
            a plan file must hold the whole plan.
        InputError: Something other than a regular file is at `path`.
    """
    if plan.present or plan.manifests_present:
        raise ValueError("a plan file needs the whole plan, made without the destination")
    manifests = {node.manifest.digest: node.manifest for node in plan.manifests.values()}
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "fingerprint": fingerprint(made_from),
        "includeNonDistributable": include_nondistributable,
        "jobs": [
            {
                "source": str(job.source),
                "destination": str(job.destination),
                "tags": list(job.tags),
                "subject": str(job.subject) if job.subject is not None else None,
            }
            for job in plan.jobs
            if job not in plan.failed
        ],
        "manifests": [
            {
                "digest": str(manifest.digest),
                "mediaType": manifest.media_type,
                "raw": base64.b64encode(manifest.raw).decode("ascii"),
            }
            for manifest in manifests.values()
        ],
        "blobs": [
            {"digest": str(blob.desc.digest), "size": blob.desc.size}
            for blob in plan.blobs.values()
        ],
        "referrers": [
            {
                "repository": str(index.repository),
                "subject": str(index.subject),
                "referrers": [desc.to_json() for desc in index.referrers],
            }
            for index in referrers
        ],
    }
    write_atomically(path, json.dumps(doc, indent=1).encode() + b"\n", mode=0o600)


def read_plan(
    path: str | os.PathLike[str],
    *,
    made_from: Mapping[str, Any],
    limits: Limits | None = None,
) -> PlanFile:
    """
    Read and check the plan file at `path`; `made_from` is what this run would make a
    plan from (as passed to `write_plan`).

    Raises:
        InputError: The file is unreadable, malformed, of another version, larger than
            the limits allow, or made from other inputs; one line naming the file.
    """
    path = Path(path)
    limits = limits or Limits()
    # Base64 makes manifests a third larger; jobs and blob sizes add less than that.
    most = 2 * limits.plan_manifest_bytes
    try:
        with path.open("rb") as handle:
            data = handle.read(most + 1)
    except OSError as exc:
        raise InputError(f"plan file {path}: {exc.strerror or exc}") from None
    if len(data) > most:
        raise InputError(
            f"plan file {path} is larger than {most} bytes",
            hint="raise --limit plan-manifest-bytes if the plan is that large",
        )
    try:
        doc = strictjson.loads(data)
    except (ValueError, RecursionError) as exc:
        raise InputError(f"plan file {path} is not valid JSON: {exc}") from None
    try:
        planfile = _parse(path, doc)
    except RelocatorError as exc:
        raise InputError(f"plan file {path}: {exc}") from None
    if planfile.fingerprint != fingerprint(made_from):
        raise InputError(
            f"plan file {path} was made from other inputs or options than this run's",
            hint="make the plan again from these inputs, or run with the inputs it was made from",
        )
    return planfile


async def plan_from_file(
    planfile: PlanFile, *, destination: Store, limits: Limits | None = None
) -> Plan:
    """
    The whole `Plan` the file holds, rebuilt without reading anything from the source
    or asking `destination` anything: ready for `run_shard` (or `execute_plan` once
    made against the destination with `plan_images(..., known=planfile.manifests)`).

    Raises:
        InputError: The file's manifests do not account for its blobs (a blob's size
            differs, or one is missing).
        TagConflict: Two of its images would get one tag in one repository.
        NotFound: A job's manifest is not in the file.
        ManifestError: A manifest is over one of the `limits`.
    """
    check_tags(planfile.jobs)
    plan = await make_plan(
        planfile.jobs,
        _FileOnly(planfile.path),
        destination,
        include_nondistributable=planfile.include_nondistributable,
        skip_present=False,
        known=dict(planfile.manifests),
        limits=limits,
    )
    sizes = {digest: blob.desc.size for digest, blob in plan.blobs.items()}
    if sizes != dict(planfile.blobs):
        raise InputError(f"plan file {planfile.path}: its blobs do not match its manifests")
    return plan


class _FileOnly:
    """
    The source while a plan file is rebuilt: every manifest comes from the file, so
    nothing here may reach a registry. A manifest the file lacks is not found, as a
    missing subject was when the plan was made (and is skipped the same way).
    """

    def __init__(self, path: Path) -> None:
        self.name = str(path)

    async def manifest_get(self, ref: Reference) -> Manifest:
        raise NotFound(f"plan file {self.name} holds no manifest {ref}", host=self.name,
                       status=404)

    async def manifest_exists(self, ref: Reference) -> Digest | None:
        raise self._unused()

    async def manifest_put(self, ref: Reference, manifest: Manifest) -> Digest | None:
        raise self._unused()

    async def blob_exists(self, repo: Repository, desc: Descriptor) -> bool:
        raise self._unused()

    def blob_open(
        self, repo: Repository, desc: Descriptor
    ) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        raise self._unused()

    async def blob_put(
        self, repo: Repository, desc: Descriptor, chunks: AsyncIterable[bytes]
    ) -> None:
        raise self._unused()

    async def aclose(self) -> None:
        """Nothing to release."""

    def _unused(self) -> AssertionError:
        return AssertionError("planning from a plan file only reads manifests")


def _parse(path: Path, doc: Any) -> PlanFile:
    """The plan file's content; raises RelocatorError (or InputError) on any bad value."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise InputError(f"not a {FORMAT} document")
    if doc.get("version") != VERSION:
        raise InputError(
            f"version {str(doc.get('version'))[:20]} is not {VERSION}",
            hint="make the plan again with this version of relocator",
        )
    found = doc.get("fingerprint")
    include_nd = doc.get("includeNonDistributable")
    if not isinstance(found, str) or not isinstance(include_nd, bool):
        raise InputError("fingerprint or includeNonDistributable missing")
    manifests: dict[Digest, Manifest] = {}
    for n, entry in enumerate(_list(doc, "manifests")):
        digest = Digest.parse(_text(entry, "digest", f"manifests[{n}]"))
        try:
            raw = base64.b64decode(_text(entry, "raw", f"manifests[{n}]"), validate=True)
        except binascii.Error:
            raise InputError(f"manifests[{n}].raw is not base64") from None
        manifests[digest] = Manifest.parse(
            raw,
            content_type=_text(entry, "mediaType", f"manifests[{n}]"),
            digest=digest,
            name=f"manifest {digest}",
        )
    blobs: dict[Digest, int] = {}
    for n, entry in enumerate(_list(doc, "blobs")):
        size = entry.get("size") if isinstance(entry, dict) else None
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size < 2**63:
            raise InputError(f"blobs[{n}] has no valid size")
        blobs[Digest.parse(_text(entry, "digest", f"blobs[{n}]"))] = size
    jobs = tuple(_job(entry, f"jobs[{n}]") for n, entry in enumerate(_list(doc, "jobs")))
    referrers = tuple(
        _referrers(entry, f"referrers[{n}]") for n, entry in enumerate(_list(doc, "referrers"))
    )
    return PlanFile(path=path, fingerprint=found, include_nondistributable=include_nd,
                    jobs=jobs, manifests=manifests, blobs=blobs, referrers=referrers)


def _referrers(entry: Any, where: str) -> ReferrersIndex:
    listed = entry.get("referrers") if isinstance(entry, dict) else None
    if not isinstance(listed, list):
        raise InputError(f"{where}.referrers must be a list")
    return ReferrersIndex(
        repository=Repository.parse(_text(entry, "repository", where)),
        subject=Digest.parse(_text(entry, "subject", where)),
        referrers=tuple(
            Descriptor.from_json(desc, where=f"{where}.referrers[{n}]")
            for n, desc in enumerate(listed)
        ),
    )


def _job(entry: Any, where: str) -> Job:
    source = Reference.parse(_text(entry, "source", where))
    if source.digest is None:
        raise InputError(f"{where}.source {source} has no digest")
    tags = entry.get("tags")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise InputError(f"{where}.tags must be a list of tags")
    subject = entry.get("subject")
    if subject is not None and not isinstance(subject, str):
        raise InputError(f"{where}.subject must be a digest")
    destination = Repository.parse(_text(entry, "destination", where))
    # The reference checks each tag: a tag a registry would refuse is refused here.
    for tag in tags:
        Reference.from_repo(destination, tag=tag)
    return Job(source=source, destination=destination, tags=tuple(tags),
               subject=Digest.parse(subject) if subject is not None else None)


def _list(doc: dict[str, Any], key: str) -> list[Any]:
    value = doc.get(key)
    if not isinstance(value, list):
        raise InputError(f"{key} must be a list")
    return value


def _text(entry: Any, key: str, where: str) -> str:
    value = entry.get(key) if isinstance(entry, dict) else None
    if not isinstance(value, str):
        raise InputError(f"{where}.{key} must be a string")
    return value
