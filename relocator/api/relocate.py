"""`relocate`: every image the inputs name, copied registry to registry."""

from __future__ import annotations

from collections.abc import Sequence

from relocator.engine import Job

from . import bundles
from .inputs import images_of, load, require_images, write_locks
from .jobs import relocation_jobs
from .planning import relocate_planned
from .registries import registry_store, transport_settings
from .requests import RelocateRequest
from .result import Result
from .session import Session
from .targets import Destinations, parse_platforms, relocated_names
from .transfer import Hooks, transfer


async def relocate(request: RelocateRequest, session: Session) -> Result:
    """Copy every image to its destination; write the locks; give the rewritten YAML."""
    if request.plan is not None:
        return await relocate_planned(request, session)
    inputs = load(request.files, session, max_bytes=request.max_input_bytes,
                  stdin=request.stdin)
    # The destination is checked before the inputs: a bad template is the likelier mistake.
    destinations = Destinations.of_request(request.repository, request.repository_template)
    images = require_images(images_of(inputs), request.files)
    platforms = parse_platforms(request.platforms)
    options = request.transfer
    settings = transport_settings(request.registries)
    async with session.client(
        request.registries, settings, destination=request.repository
    ) as client:
        store = registry_store(client, request.registries)
        targets, jobs, found = await relocation_jobs(
            store, images, inputs, session, destinations,
            preserve_tags=request.preserve_tags, tag_scheme=request.tag_scheme,
            keep_going=options.keep_going, platforms=platforms,
        )

        def importing(planned: Sequence[Job]) -> None:
            # kbld's lines between reading the sources and writing the destination.
            session.log(f"exported {len(jobs)} images")
            session.log(f"importing {len(planned)} images...")
            for job in planned:
                session.log(f"importing {job.source} -> {job.target}...")

        moved = await transfer(
            session, options, request.registries, jobs, store, store, client,
            verb="imported", referrers_of=jobs if options.include_referrers else (),
            fetched=found.found.manifests,
            hooks=Hooks(
                before_copy=importing,
                after_copy=lambda report: session.log(f"imported {len(report.images)} images"),
            ),
        )
        if moved.report is not None and found:
            await bundles.note_copies(store, found, bundles.one_repository(found, destinations),
                                      session)
    if moved.report is None:
        return Result(plan=moved.plan, hosts=session.hosts())
    mapping = relocated_names(targets)
    write_locks(request.locks, list(mapping.items()), inputs)
    return Result(report=moved.report, yaml=inputs.render(mapping), hosts=session.hosts())
