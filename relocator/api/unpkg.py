"""
`unpkg`: every image of a tarball, imported to one destination with no access to its
source. What `pkg` packaged with referrers lands too: cosign's tags are always applied,
and each packaged referrers index is merged into the destination's.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from relocator.engine import Job, image_tag
from relocator.engine.fallback_index import ReferrersIndex
from relocator.errors import InputError
from relocator.oci import Digest, Reference, Repository, mediatypes
from relocator.store import RegistryStore
from relocator.store.base import attached_to

from . import bundles
from .inputs import InputImage, images_of, load, write_locks
from .registries import transport_settings
from .requests import UnpkgRequest
from .result import Result
from .session import Session
from .targets import Destinations
from .text import count
from .transfer import Hooks, transfer

if TYPE_CHECKING:
    from relocator.store.tarball import TarballReader
    from relocator.store.tarball.images import TarballImage


async def unpkg(request: UnpkgRequest, session: Session) -> Result:
    """Import every image of `request.input`; write the locks; give the rewritten YAML."""
    inputs = load(request.files, session, max_bytes=request.max_input_bytes,
                  stdin=request.stdin)
    images = images_of(inputs)
    destinations = Destinations.of_request(request.repository, request.repository_template)
    options = request.transfer
    from relocator.store.tarball import TarballReader  # only unpkg needs it

    async with TarballReader(Path(request.input)) as reader:
        if not reader.images():
            raise InputError(f"no images found in {request.input}",
                             hint="it is an empty tarball; package images with relocator pkg")
        # Every image the inputs name must be in the tarball before anything is pushed.
        for image in images:
            if await reader.manifest_exists(image.reference) is None:
                raise InputError(
                    f"Expected to find image for '{image.names[0]}' in {request.input}",
                    hint="package it with relocator pkg -f FILE --output TAR",
                )
        packaged = await _packaged_indexes(request, reader, destinations)
        indexes = list(packaged.values())
        attached = {d.digest: i.subject for i in indexes for d in i.referrers}
        jobs: list[Job] = []
        for tar_image in reader.images():
            if tar_image.digest in packaged:
                continue
            source = _tarball_source(request, tar_image, destinations)
            jobs.append(_import_job(request, tar_image, source, destinations.of(source),
                                    attached.get(tar_image.digest)))
        found = await bundles.bundles_of(
            reader, [InputImage(reference=j.source, names=(), written=j.source) for j in jobs],
            inputs, session, destinations, keep_going=options.keep_going,
        )
        named = {t.digest: t.tags for t in reader.images()}
        # A bundle keeps its tag (imgpkg re-applies it), with or without preserve_tags.
        jobs = [
            dataclasses.replace(j, tags=tuple(dict.fromkeys((*j.tags, *named[j.digest]))))
            if j.digest in found.found.bundles else j
            for j in jobs
        ]
        session.log(f"importing {len(jobs)} images...")
        for job in jobs:
            session.log(f"importing {job.source} -> {job.target}...")
        for index in indexes:
            session.log(f"will merge {count(len(index.referrers), 'referrer')} into "
                        f"{index.reference}")
        settings = transport_settings(request.registries)
        async with session.client(
            request.registries, settings, destination=request.repository
        ) as client:
            target = RegistryStore(client, verify_uploads=request.registries.verify_blobs)
            moved = await transfer(
                session, options, request.registries, jobs, reader, target, client,
                verb="imported", indexes=indexes, fetched=found.found.manifests,
                hooks=Hooks(
                    after_copy=lambda report: session.log(
                        f"imported {len(report.images)} images"
                    ),
                ),
            )
            if moved.report is not None and found:
                await bundles.note_copies(
                    target, found, bundles.one_repository(found, destinations), session
                )
    if moved.report is None:
        return Result(plan=moved.plan, hosts=session.hosts())
    landed = {job.digest: str(job.target) for job in jobs}
    mapping = {
        name: landed.get(image.digest) or str(
            Reference.from_repo(destinations.of(image.reference), digest=image.digest)
        )
        for image in images
        for name in image.names
    }
    write_locks(request.locks, list(mapping.items()), inputs)
    return Result(report=moved.report, yaml=inputs.render(mapping), hosts=session.hosts())


def _tarball_source(
    request: UnpkgRequest, tar_image: TarballImage, destinations: Destinations
) -> Reference:
    """The reference a tarball recorded for an image, or its digest in the repository."""
    if tar_image.reference is not None:
        return tar_image.reference
    single = destinations.single
    if single is None:
        raise InputError(
            f"{request.input} records no full reference for image "
            f"{tar_image.name or tar_image.digest}; --repository-template needs one",
            hint="import it with --repository instead",
        )
    return Reference.from_repo(single, digest=tar_image.digest)


def _import_job(
    request: UnpkgRequest,
    tar_image: TarballImage,
    source: Reference,
    destination: Repository,
    subject: Digest | None,
) -> Job:
    """
    How unpkg lands one image of a tarball: under relocator's digest tag (and, with
    `preserve_tags`, the tags recorded for it). What is attached to another image
    (listed in a packaged referrers index, or under a cosign tag, which is always
    applied: it belongs to the content) lands without relocator's tag, after its subject.
    """
    cosign: list[str] = []
    for tag in tar_image.tags:
        found = attached_to(tag)
        if found is not None and found[1] is not None:
            cosign.append(tag)
            subject = subject or found[0]
    own = (image_tag(tar_image.digest, request.tag_scheme),) if subject is None else ()
    chosen = tar_image.tags if request.preserve_tags else ()
    tags = tuple(dict.fromkeys((*own, *cosign, *chosen)))
    return Job(source=source, destination=destination, tags=tags, subject=subject)


async def _packaged_indexes(
    request: UnpkgRequest, reader: TarballReader, destinations: Destinations
) -> dict[Digest, ReferrersIndex]:
    """
    The referrers indexes `pkg` packaged with referrers (indexes recorded under their
    subject's `sha256-<hex>` tag), by their digest: they are merged into the
    destination's index, not pushed over it.
    """
    indexes: dict[Digest, ReferrersIndex] = {}
    for tar_image in reader.images():
        if not mediatypes.is_index(tar_image.media_type):
            continue
        subjects = [found[0] for tag in tar_image.tags
                    if (found := attached_to(tag)) is not None and found[1] is None]
        if not subjects:
            continue
        source = _tarball_source(request, tar_image, destinations)
        index = await reader.manifest_get(source)
        indexes[tar_image.digest] = ReferrersIndex(
            repository=destinations.of(source), subject=subjects[0], referrers=index.manifests
        )
    return indexes
