"""The jobs of a relocation: each input image (and what bundles add) to its destination."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from relocator import config
from relocator.engine import Job
from relocator.oci import Platform
from relocator.store import Store

from . import bundles
from .inputs import InputImage
from .session import Session
from .targets import Destinations, Target, select_platforms, targets_of
from .transfer import will_export


async def relocation_jobs(
    store: Store,
    images: Sequence[InputImage],
    inputs: config.Inputs,
    session: Session,
    destinations: Destinations,
    *,
    preserve_tags: bool,
    tag_scheme: str,
    keep_going: bool,
    platforms: Sequence[Platform],
) -> tuple[list[Target], list[Job], bundles.Bundles]:
    """
    The targets, their jobs and the bundles found among `images` (whose images come
    too); with `platforms`, only those platforms' images of an index.
    """
    found = await bundles.bundles_of(store, images, inputs, session, destinations,
                                     keep_going=keep_going, platforms=platforms)
    targets = [
        dataclasses.replace(
            t, tags=tuple(dict.fromkeys((*t.tags, *found.tags_of(t.image.digest))))
        )
        for t in targets_of([*images, *bundles.added_images(found)], destinations,
                            preserve_tags=preserve_tags, tag_scheme=tag_scheme)
    ]
    if platforms:
        targets = await select_platforms(targets, store, platforms, session)
    jobs = [job for target in targets for job in target.jobs()]
    will_export(session, [str(job.source) for job in jobs])
    return targets, jobs, found
