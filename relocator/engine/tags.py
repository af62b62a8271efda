"""
The tags a run will set, checked while planning, before anything is pushed: each one a
valid tag, and each destination tag wanted by one image only.

Every caller's jobs pass here (`plan_images`): `relocate --preserve-tags`, `unpkg
--preserve-tags`, `mirror`, templates mapping two sources to one repository. Finding a
clash only when the second image is pushed would leave the tag on whichever image came
last, after the run had already changed the destination.
"""

from __future__ import annotations

from collections.abc import Sequence

from relocator.errors import InputError
from relocator.oci import Repository, check_tag

from .graph import Job


class TagConflict(InputError):
    """Two different images would get the same tag in one destination repository."""


def check_tags(jobs: Sequence[Job], *, shared_repository: bool = True) -> None:
    """
    Check every tag `jobs` would set.

    Args:
        jobs: The run's jobs.
        shared_repository: Whether a tag lands in the job's destination repository, where
            two images cannot both have it (a registry). A file-backed destination
            records each image's tags beside its own name instead, so one tag may go
            with several images there.

    Raises:
        InvalidReference: A tag is not valid by the distribution grammar.
        TagConflict: Two different digests want one `repository:tag`; the message names
            it and both sources.
    """
    owners: dict[tuple[Repository, str], Job] = {}
    for job in jobs:
        for tag in job.tags:
            check_tag(tag, where=f"tag for {job.destination} from {job.source}")
            if not shared_repository:
                continue
            first = owners.setdefault((job.destination, tag), job)
            if first.digest != job.digest:
                raise TagConflict(
                    f"{job.destination}:{tag} would be both {first.source} and {job.source}",
                    hint="give them different destination repositories, or leave the tag "
                    "out for one of them",
                )
