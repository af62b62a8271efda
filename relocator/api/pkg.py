"""`pkg`: every image the inputs name, exported into one tarball, each blob once."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from relocator.engine import Job, Report
from relocator.errors import InputError
from relocator.oci import Repository

from . import bundles
from .inputs import images_of, load, require_images
from .registries import registry_store, transport_settings
from .requests import PkgRequest
from .result import Result
from .session import Session
from .text import count, megabytes
from .transfer import Hooks, transfer, will_export

if TYPE_CHECKING:
    from relocator.store.tarball import TarballWriter


async def pkg(request: PkgRequest, session: Session) -> Result:
    """Export every image into `request.output`."""
    inputs = load(request.files, session, max_bytes=request.max_input_bytes,
                  stdin=request.stdin)
    images = require_images(images_of(inputs), request.files)
    options = request.transfer
    # A tarball is content-addressed: every image goes to one place, so that a blob
    # shared by images of different source repositories is planned (and written) once.
    # The tags the inputs named travel in the tarball, for `unpkg --preserve-tags`; a
    # bundle's tag travels too, and unpkg always applies it.
    inside = Repository(registry="tarball", path="images")
    from relocator.store.tarball import TarballWriter  # only pkg needs it

    def writing(_planned: Sequence[Job]) -> None:
        session.log(f"exported {len(jobs)} images")
        session.log("writing layers...")

    def written(report: Report) -> None:
        # kbld times each file it writes; relocator writes them concurrently, so a time
        # per file would mislead: each line gives the file's size instead. A run with
        # failed images keeps no tarball, so it lists none.
        if report.failures:
            return
        for name, size in writer.members():
            session.log(f"done: file '{name}' ({size} bytes)")

    writer = TarballWriter(Path(request.output), format=request.format, resume=request.resume)
    if not request.resume and not options.dry_run:
        await _refuse_unfinished(writer)
    try:
        settings = transport_settings(request.registries)
        async with session.client(request.registries, settings, destination=None) as client:
            store = registry_store(client, request.registries)
            found = await bundles.bundles_of(store, images, inputs, session, None,
                                             keep_going=options.keep_going)
            images = [*images, *bundles.added_images(found)]
            jobs = [
                Job(source=i.written, destination=inside,
                    tags=tuple(dict.fromkeys((*i.tags, *found.tags_of(i.digest)))))
                for i in images
            ]
            will_export(session, [str(image.reference) for image in images])
            moved = await transfer(
                session, options, request.registries, jobs, store, writer, client,
                verb="exported", referrers_of=jobs if options.include_referrers else (),
                fetched=found.found.manifests,
                hooks=Hooks(before_copy=writing, after_copy=written),
            )
    finally:
        await writer.aclose()
        if writer.kept is not None:
            session.log(f"kept the unfinished tarball {writer.kept}; rerun with --resume to "
                        "reuse what it holds")
    return Result(report=moved.report, plan=moved.plan, hosts=session.hosts())


async def _refuse_unfinished(writer: TarballWriter) -> None:
    """
    Stop rather than start afresh over what an interrupted run left: without
    `resume` its finished blobs would be discarded and fetched again.
    """
    left = await writer.unfinished()
    if left is not None:
        raise InputError(
            f"found the unfinished tarball {left.path} of an interrupted run: "
            f"--resume would reuse its {count(left.blobs, 'finished blob')} "
            f"({megabytes(left.size)}) after checking them",
            hint=f"rerun with --resume, or delete {left.path} and {left.journal} to "
            "start afresh",
        )


def check_pkg(request: PkgRequest) -> None:
    """
    Refuse what `pkg` cannot do as asked.

    Raises:
        InputError: Referrers asked for with a format that records no tags.
    """
    if request.transfer.include_referrers and request.format != "oci":
        raise InputError(
            f"--include-referrers needs --format oci: the {request.format} format records "
            "no tags, so signatures and referrers indexes would arrive without theirs"
        )
